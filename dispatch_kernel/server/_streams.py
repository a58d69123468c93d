"""The run stream: server-sent events of every run change, fanned out by one RunHub.

`GET runs/stream` answers `event: run` with the run record on every status change; the core
calls watchers on whichever thread changed a run, and the hub hands the serialized record to the
event loop, to every open stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Callable

from ..model import Run, strict_dumps

if TYPE_CHECKING:
    from ..runs.manager import RunManager

KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream
STREAM_BACKLOG = 10_000  # run changes kept for a slow stream reader before it is cut off


class RunHub:
    """Fans run changes of the core out to the open event streams of this server.

    The core calls watchers on whichever thread changed a run; the hub serializes the run there
    (a snapshot of it) and hands the text to the event loop. It watches the core only while
    a stream is open, so runs cost nothing extra otherwise.
    """

    def __init__(self, runs: RunManager) -> None:
        self.runs = runs
        self._streams: set[RunStream] = set()
        self._stop: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, org: str) -> RunStream:
        """A new stream of the run changes of organization `org` (on the event loop)."""
        self._loop = asyncio.get_running_loop()
        stream = RunStream(org)
        self._streams.add(stream)
        if self._stop is None:
            self._stop = self.runs.watch(self._changed)
        return stream

    def close(self, stream: RunStream) -> None:
        """End `stream`; the hub stops watching when the last one ends."""
        self._streams.discard(stream)
        stream.end()
        if not self._streams and self._stop is not None:
            self._stop()
            self._stop = None

    def close_all(self) -> None:
        """End every stream (the server is stopping)."""
        for stream in list(self._streams):
            self.close(stream)

    def _changed(self, run: Run) -> None:  # on the thread that changed the run
        if self._loop is None:
            return
        text = strict_dumps(run.to_dict(json_ready=False))
        try:
            self._loop.call_soon_threadsafe(self._publish, run.org, run.function, text)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _publish(self, org: str, function: str, text: str) -> None:
        for stream in list(self._streams):
            if stream.org == org:  # a stream never carries another organization's runs
                stream.put(function, text)


class RunStream:
    """One open event stream: a bounded backlog and a wake-up for its writer."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.backlog: deque[tuple[str, str]] = deque()
        self.ready = asyncio.Event()
        self.ended = False

    def put(self, function: str, text: str) -> None:
        """Queue one change (a run record as JSON text) for the writer."""
        if len(self.backlog) >= STREAM_BACKLOG:
            self.end()  # too slow a reader: cut it off rather than hold memory without bound
            return
        self.backlog.append((function, text))
        self.ready.set()

    def end(self) -> None:
        """Stop the stream: its writer finishes the response."""
        self.ended = True
        self.ready.set()


__all__ = ["RunHub", "RunStream"]
