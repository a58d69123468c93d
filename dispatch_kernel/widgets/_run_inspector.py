"""RunInspector: everything about one run: input, output, logs, and the error with its trace."""

from __future__ import annotations

import ipywidgets as widgets

from ..model import Run, RunStatus
from . import _format as fmt
from ._base import DispatchWidget

TITLES = ("Input", "Output", "stdout", "stderr", "Error")
ERROR_TAB = TITLES.index("Error")
OUTPUT_TAB = TITLES.index("Output")


class RunInspector(DispatchWidget, widgets.VBox):
    """One run in detail: a header line, then tabs for input, output, stdout, stderr and error.

    `update(run)` shows a newer state of the run (a RunsTable calls it as the run progresses).
    The parts are plain HTML widgets (`header`, `input`, `output`, `stdout`, `stderr`, `error`,
    `stacktrace`) whose `.value` is the escaped content.
    """

    def __init__(self, run: Run, **kwargs) -> None:
        self.header = widgets.HTML()
        self.input = widgets.HTML()
        self.output = widgets.HTML()
        self.stdout = widgets.HTML()
        self.stderr = widgets.HTML()
        self.error = widgets.HTML()
        self.stacktrace = widgets.HTML()
        self.tabs = widgets.Tab(
            children=[self.input, self.output, self.stdout, self.stderr,
                      widgets.VBox([self.error, self.stacktrace])],
            titles=TITLES,
        )
        super().__init__(children=[self.header, self.tabs], **kwargs)
        self.run = run
        self._shown_finished = False  # the run object may be live: remember what was shown
        self.update(run)

    def update(self, run: Run) -> None:
        """Show `run` (typically the same run, further along)."""
        # Choose the tab only when the run is first shown or has just finished, so a tab the
        # user picked is not taken away on every update.
        first = not self.header.value
        just_finished = _finished(run) and not self._shown_finished
        self._shown_finished = _finished(run)
        self.run = run
        failed = run.error is not None
        self.header.value = _header(run)
        self.input.value = fmt.pre(fmt.as_json(run.input))
        self.output.value = fmt.pre(_output_text(run),
                                    empty="(no output)" if _finished(run) else "(no output yet)")
        self.stdout.value = fmt.pre(run.logs.get("stdout", ""), empty="(nothing on stdout)")
        self.stderr.value = fmt.pre(run.logs.get("stderr", ""), empty="(nothing on stderr)")
        self.error.value = _error_line(run)
        self.stacktrace.value = fmt.pre(run.error.stacktrace if failed else "",
                                        empty="(no stack trace)")
        if first or just_finished:
            # Open where the answer is: the error of a failed run, the output of any other.
            self.tabs.selected_index = ERROR_TAB if failed else OUTPUT_TAB

    def _static_text(self) -> str:
        run = self.run
        lines = [_summary(run), f"input:  {fmt.clip(fmt.as_json(run.input), 2000)}"]
        if run.error is not None:
            lines.append(f"error:  {run.error.type}: {run.error.message}")
            if run.error.stacktrace:
                lines.append(fmt.clip(run.error.stacktrace.rstrip("\n"), 4000))
        elif _finished(run):
            lines.append(f"output: {fmt.clip(fmt.as_json(run.output), 2000)}")
        for stream in ("stdout", "stderr"):
            text = run.logs.get(stream, "")
            if text:
                lines.append(f"{stream}:\n{fmt.clip(text.rstrip(chr(10)), 4000)}")
        return "\n".join(lines)

    def _static_html(self) -> str:
        run = self.run
        pairs = [("input", self.input.value)]
        if run.error is not None:
            pairs += [("error", self.error.value), ("stack trace", self.stacktrace.value)]
        else:
            pairs.append(("output", self.output.value))
        pairs += [("stdout", self.stdout.value), ("stderr", self.stderr.value)]
        return f"<div>{self.header.value}{fmt.fields_html(pairs)}</div>"


def _finished(run: Run) -> bool:
    return RunStatus(run.status).finished


def _summary(run: Run) -> str:
    """One line: which run, its status and how long it took."""
    parts = [f"run {run.id} of {run.function}: {RunStatus(run.status).value}"]
    if run.duration is not None:
        parts.append(f"in {fmt.seconds(run.duration)}")
    if run.cold_start:
        parts.append("(cold start)")
    return " ".join(parts)


def _header(run: Run) -> str:
    details = [f"<b>{fmt.escape(run.function)}</b>", f"<code>{fmt.escape(run.id)}</code>",
               f"queued {fmt.clock(run.queued)}"]
    if run.started is not None:
        details.append(f"started {fmt.clock(run.started)}")
    if run.duration is not None:
        details.append(f"took {fmt.seconds(run.duration)}")
    if run.cold_start:
        details.append("cold start")
    return f"<div>{fmt.badge(RunStatus(run.status).value)} {' · '.join(details)}</div>"


def _output_text(run: Run) -> str:
    if run.status == RunStatus.SUCCEEDED:
        return fmt.as_json(run.output)
    return ""


def _error_line(run: Run) -> str:
    if run.error is None:
        return '<span style="color:#6c757d">(no error)</span>'
    return f"<b>{fmt.escape(run.error.type)}</b>: {fmt.escape(run.error.message)}"
