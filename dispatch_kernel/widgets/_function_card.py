"""FunctionCard: what a deployed function is and where it runs, and the log of its deploy."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets

from ..drivers.choice import describe_drivers
from ..model import Function
from . import _format as fmt
from ._base import DispatchWidget
from ._throttle import Throttle

HOST = "host"  # the environment id of a function that runs in the caller's own environment
SHOWN_LINES = 12  # progress lines in view; the rest stay in `lines` and the text fallback


class FunctionCard(DispatchWidget, widgets.VBox):
    """A function's name, status, driver, environment, requirements and deploy time.

    `function` is a Function, a FunctionHandle, or just a name while the deploy is still
    running. `progress(line)` appends to a small log and fits deploy's `progress=` callback:

        card = FunctionCard("resize"); display(card)
        fn = client.deploy(resize, progress=card.progress)
        card.update(fn.function, deploy_seconds=...)

    Lines may come from any thread; they are shown at most `1 / interval` times a second.
    """

    def __init__(self, function: Function | Any, detected_requirements: Iterable[str] | None = None,
                 deploy_seconds: float | None = None, *, urls: Iterable[str] | None = None, max_lines: int = 500,
                 interval: float = 0.25, **kwargs: Any) -> None:
        self.header = widgets.HTML()
        self.details = widgets.HTML()
        self.progress_log = widgets.HTML(layout=widgets.Layout(display="none"))  # shown from the first line
        super().__init__(children=[self.header, self.details, self.progress_log], **kwargs)
        self.function: Function | None = None
        self.name = ""
        self.detected_requirements: list[str] = []
        self.deploy_seconds: float | None = None
        self.urls: list[str] = []  # where the function's API routes answer
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._lines_lock = threading.Lock()
        # The render thread and update() both flush: one at a time, so an older tail never
        # overwrites a newer one.
        self._flush_lock = threading.Lock()
        self._unshown = 0
        self._throttle = Throttle(self.flush, interval, name="dispatch-function-card")
        self.update(function, detected_requirements, deploy_seconds, urls=urls)

    def update(self, function: Function | Any, detected_requirements: Iterable[str] | None = None,
               deploy_seconds: float | None = None, *, urls: Iterable[str] | None = None) -> None:
        """Show `function` (a newer record, or the one a deploy just returned), and the URLs of
        its API routes when given (Client.api_urls)."""
        function = getattr(function, "function", function)  # a FunctionHandle holds its record
        if isinstance(function, Function):
            self.function, self.name = function, function.name
        else:
            self.function, self.name = None, str(function)
        if detected_requirements is not None:
            self.detected_requirements = list(detected_requirements)
        if deploy_seconds is not None:
            self.deploy_seconds = deploy_seconds
        if urls is not None:
            self.urls = list(urls)
        self.header.value = _header_html(self.function, self.name)
        self.details.value = fmt.fields_html([(k, _urls_html(self.urls) if k == "urls" else fmt.escape(v))
                                              for k, v in self._fields()])
        self.flush()

    def progress(self, line: str) -> None:
        """Append a progress line (e.g. from an environment build); safe from any thread."""
        with self._lines_lock:
            for part in str(line).rstrip("\n").split("\n"):
                self.lines.append(part)
                self._unshown += 1
        self._throttle.poke()

    def flush(self) -> bool:
        """Show the progress lines received so far; False when there were none."""
        with self._flush_lock:
            with self._lines_lock:
                if not self._unshown:
                    return False
                self._unshown = 0
                tail = list(self.lines)[-SHOWN_LINES:]
            self.progress_log.value = (
                '<pre style="margin:0;font-size:0.85em;color:#495057;white-space:pre-wrap">'
                f"{fmt.escape(chr(10).join(tail))}</pre>"
            )
            self.progress_log.layout.display = None
            return True

    def close(self) -> None:
        """Stop the progress thread and close the views."""
        if hasattr(self, "_throttle"):  # ipywidgets also closes from __del__, even after a failed __init__
            self._throttle.stop()
        super().close()

    def _fields(self) -> list[tuple[str, str]]:
        function = self.function
        if function is None:
            return [("status", "deploying…")]
        detected = set(self.detected_requirements)
        requirements = ", ".join(f"{r} (detected)" if r in detected else r for r in function.requirements)
        environment = function.image or "(not built yet)"
        if environment == HOST:
            environment = "host (the caller's own Python environment)"
        scaling = function.scaling or {}
        pairs = [
            ("driver", describe_drivers(function.drivers, function.driver_status) or function.driver),
            ("environment", environment),
            ("requirements", requirements or "(none)"),
            ("handler", f"{function.handler} ({function.convention})"),
            ("timeout", fmt.seconds(function.timeout) if function.timeout else "none"),
            ("memory", _bytes(function.resources.get("memory"))),
            ("workers", f"{scaling.get('min_workers', 0)}–{scaling.get('max_workers', '?')}"),
            ("schema", ", ".join(k for k in ("in", "out") if function.schema.get(k)) or "none"),
            ("secrets", ", ".join(function.secrets) or "none"),
            ("revision", str(function.revision)),
        ]
        if function.reason:
            pairs.insert(0, ("reason", function.reason))
        if self.urls:
            pairs.append(("urls", " ".join(self.urls)))
        if self.deploy_seconds is not None:
            pairs.append(("deployed in", fmt.seconds(self.deploy_seconds)))
        return pairs

    def _static_text(self) -> str:
        status = self.function.status if self.function is not None else "DEPLOYING"
        lines = [f"function {self.name}: {status}"]
        lines += [f"  {key}: {value}" for key, value in self._fields() if key != "status"]
        with self._lines_lock:
            lines += [f"  | {line}" for line in self.lines]
        return "\n".join(lines)

    def _static_html(self) -> str:
        log = self.progress_log.value if self.lines else ""
        return f"<div>{self.header.value}{self.details.value}{log}</div>"


def _header_html(function: Function | None, name: str) -> str:
    # Before the first record the card cannot know CREATING from UPDATING: it says what it sees.
    status = function.status if function is not None else "DEPLOYING"
    return f"<div>{fmt.badge(status)} <b>{fmt.escape(name)}</b></div>"


def _urls_html(urls: list[str]) -> str:
    """The URLs of the function's routes, one a line; links where they are whole URLs."""
    return "<br>".join(f'<a href="{fmt.escape(url)}" target="_blank">{fmt.escape(url)}</a>'
                       if url.startswith(("http://", "https://")) else fmt.escape(url) for url in urls)


def _bytes(size: Any) -> str:
    if not size:
        return "default"
    size = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" or size == int(size) else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
