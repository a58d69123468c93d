"""RunsTable: the latest runs, live, with a picker that opens a RunInspector below."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from .._client import Client
from ..model import Run, RunStatus
from . import _format as fmt
from ._base import DispatchWidget, close_tree
from ._run_inspector import RunInspector
from ._throttle import Throttle

HEADERS = ("status", "function", "started", "duration", "cold start", "error", "id")
NOT_SELECTED = ("— pick a run to inspect —", None)


class RunsTable(DispatchWidget, widgets.VBox):
    """The `limit` newest runs (of one function or all; with one status or any), live.

    It follows `client.watch_runs`: the callback only records the changed run, and a
    background thread re-renders at most `1 / interval` times a second, so a burst of thousands
    of runs costs a few renders. `flush()` renders pending changes now. Picking a run in
    `selector` opens its RunInspector in `inspector_area`. `close()` stops following.
    """

    def __init__(self, client: Client, function: str | None = None, limit: int = 50, *,
                 status: str | None = None, interval: float = 0.25, **kwargs: Any) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.client = client
        self.function = getattr(function, "name", function)  # a FunctionHandle or Function works too
        # With a status, a run is shown while it has that status (e.g. FAILED: as each one fails).
        self.status = _status(status)
        self.limit = limit
        self.render_count = 0  # how many times the view was re-rendered (tests bound it)
        self.title = widgets.HTML()
        self.table = widgets.HTML()
        self.selector = widgets.Dropdown(options=[NOT_SELECTED], value=None, description="Inspect",
                                         layout=widgets.Layout(width="max-content"))
        self.inspector_area = widgets.VBox()
        self.inspector: RunInspector | None = None
        super().__init__(children=[self.title, self.table, self.selector, self.inspector_area], **kwargs)

        self._pending: dict[str, Run] = {}
        self._pending_lock = threading.Lock()
        # Held while rendering or reacting to a pick: the view is changed by one thread at a time.
        self._render_lock = threading.RLock()
        self._rendering_thread: int | None = None
        self._runs: dict[str, Run] = {}
        self._selected: str | None = None
        self._throttle = Throttle(self.flush, interval, name="dispatch-runs-table")
        self.selector.observe(self._on_pick, names="value")

        # Subscribe before listing: a change between the two is then seen, not lost.
        self._unwatch = client.watch_runs(self._on_run)
        for run in client.list_runs(function=self.function, status=status, limit=limit):
            self._runs[run.id] = run
        self._render()

    # ------------------------------------------------------------------ public

    @property
    def runs(self) -> list[Run]:
        """The runs shown, newest first."""
        with self._render_lock:
            return list(self._runs.values())

    def flush(self) -> bool:
        """Render the changes received so far; False when there were none."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return False
        with self._render_lock:
            for run_id, run in pending.items():
                known = self._runs.get(run_id)
                # A watcher may deliver an older state after a listing: never move a run back.
                if known is not None and _finished(known) and not _finished(run):
                    continue
                if self.status is None or run.status == self.status:
                    self._runs[run_id] = run
                else:
                    self._runs.pop(run_id, None)
            self._render()
            if self.inspector is not None and self._selected in pending:
                self.inspector.update(self._runs.get(self._selected, pending[self._selected]))
        return True

    def select(self, run_id: str | None) -> RunInspector | None:
        """Open the inspector on `run_id` (None closes it); what picking it in the view does."""
        with self._render_lock:
            self._selected = run_id
            if self.selector.value != run_id:
                self._set_quietly(self.selector, "value", run_id)
            if self.inspector is not None:
                close_tree(self.inspector)
                self.inspector = None
            if run_id is not None:
                run = self._runs.get(run_id) or self.client.get_run(run_id)
                self.inspector = RunInspector(run)
            self.inspector_area.children = [self.inspector] if self.inspector is not None else []
            return self.inspector

    def close(self) -> None:
        """Stop following runs, end the render thread, and close the views."""
        # ipywidgets also calls close() from __del__, even after a failed __init__.
        if hasattr(self, "_unwatch"):
            self._unwatch()
        if hasattr(self, "_throttle"):
            self._throttle.stop()
        super().close()

    # ------------------------------------------------------------------ internals

    def _on_run(self, run: Run) -> None:
        # Called on worker and run threads for every status change: record and return.
        if self.function is not None and run.function != self.function:
            return
        with self._pending_lock:
            self._pending[run.id] = run
        self._throttle.poke()

    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._rendering_thread == threading.get_ident():
            return  # our own re-render moved the selection, not the user
        self.select(change["new"])

    def _render(self) -> None:
        """Re-render from `self._runs` (under the render lock)."""
        runs = sorted(self._runs.values(), key=lambda r: (r.queued, r.id), reverse=True)
        if len(runs) > self.limit:
            runs = runs[: self.limit]
        self._runs = {run.id: run for run in runs}
        options = [NOT_SELECTED] + [(_label(run), run.id) for run in runs]
        if self._selected is not None and self._selected not in self._runs:
            # Keep a run being inspected pickable after it scrolls out of the newest `limit`.
            options.append((f"{self._selected} (not listed)", self._selected))
        self.title.value = _title(runs, self.function, self.status, self.limit)
        self.table.value = _table_html(runs)
        if [o[1] for o in self.selector.options] != [o[1] for o in options]:
            self._set_quietly(self.selector, "options", options)
            self._set_quietly(self.selector, "value", self._selected)
        self.render_count += 1

    def _set_quietly(self, widget: widgets.Widget, name: str, value: Any) -> None:
        # Setting options resets a Dropdown's value; _on_pick must not take that for a pick.
        previous, self._rendering_thread = self._rendering_thread, threading.get_ident()
        try:
            setattr(widget, name, value)
        finally:
            self._rendering_thread = previous

    def _static_text(self) -> str:
        runs = self.runs
        table = fmt.text_table(HEADERS, [_cells(run) for run in runs])
        return f"{_title_text(runs, self.function, self.status, self.limit)}\n{table}"

    def _static_html(self) -> str:
        return f"<div>{self.title.value}{self.table.value}</div>"


def _status(status: str | None) -> RunStatus | None:
    if status is None:
        return None
    try:
        return RunStatus(status.upper())
    except ValueError:
        choices = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"unknown run status {status!r} (one of {choices})") from None


def _finished(run: Run) -> bool:
    return RunStatus(run.status).finished


def _cells(run: Run) -> list[str]:
    """One row: status, function, start time, duration, cold start, error type, id."""
    return [
        RunStatus(run.status).value,
        run.function,
        fmt.clock(run.started if run.started is not None else run.queued),
        fmt.seconds(run.duration),
        "yes" if run.cold_start else "",
        run.error.type if run.error is not None else "",
        run.id,
    ]


def _table_html(runs: list[Run]) -> str:
    if not runs:
        return '<span style="color:#6c757d">no runs yet</span>'
    rows = []
    for run in runs:
        status, *middle, run_id = _cells(run)
        rows.append([fmt.badge(status), *map(fmt.escape, middle), f"<code>{fmt.escape(run_id)}</code>"])
    return fmt.html_table(HEADERS, rows, raw=True)


def _counts(runs: list[Run]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        status = RunStatus(run.status).value
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))


def _title_text(runs: list[Run], function: str | None, status: RunStatus | None, limit: int) -> str:
    newest = "newest " if len(runs) >= limit else ""
    kind = f"{status.value.lower()} " if status is not None else ""
    scope = f" of {function}" if function else ""
    counts = _counts(runs) if status is None else ""
    return f"{len(runs)} {newest}{kind}run(s){scope}" + (f": {counts}" if counts else "")


def _title(runs: list[Run], function: str | None, status: RunStatus | None, limit: int) -> str:
    return f"<b>{fmt.escape(_title_text(runs, function, status, limit))}</b>"


def _label(run: Run) -> str:
    # Without the status: the options then change only when runs arrive, not on every step.
    return f"{fmt.clock(run.queued)}  {run.function}  {run.id}"
