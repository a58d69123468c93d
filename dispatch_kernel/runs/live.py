"""LiveRuns: the runs in flight in this process, and the one place their state changes.

A run is added when it is admitted (recorded QUEUED), claimed when its batch reaches a driver
(RUNNING), settled when its outcome is back (SUCCEEDED, FAILED or CANCELLED) and removed once
that is recorded. Every change happens here, under one lock; whoever reads a run that is in
flight (get_run, list_runs, watchers) gets a snapshot, never the record that other threads are
still changing. Cancellation is kept here too: a QUEUED run is cancelled on the spot, and a
RUNNING one is marked as stopping until its driver's outcome says it stopped.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Callable, Iterable

from ..drivers.base import NEVER_STARTED
from ..model import ErrorType, Run, RunFailure, RunStatus
from .settle import Settled

_FINISHED = frozenset(status for status in RunStatus if status.finished)

log = logging.getLogger(__name__)

Watcher = Callable[[Run], None]


def snapshot(run: Run) -> Run:
    """A copy of `run` that later changes to it do not reach (its parts are replaced, never
    changed in place, so a shallow copy is enough)."""
    return copy.copy(run)


class LiveRuns:
    """In-flight runs by id, with their waiters and watchers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        # RUNNING runs whose driver was asked to stop them (usually none: a caller tests it
        # before asking was_stopped of every run)
        self.stopping: set[str] = set()
        self._finished: dict[str, threading.Event] = {}  # run id -> set when it is removed
        self._watchers: tuple[Watcher, ...] = ()
        self.watched = False  # whether anybody watches: announcing costs nothing otherwise

    # ------------------------------------------------------------------ reading

    def get(self, run_id: str, org: str) -> Run | None:
        """A snapshot of the run, if it is in flight here and belongs to `org`."""
        with self._lock:
            run = self._runs.get(run_id)
            return snapshot(run) if run is not None and run.org == org else None

    def current(self, run: Run) -> Run:
        """A snapshot of `run`'s live state if it is in flight here, else `run` itself."""
        with self._lock:
            live = self._runs.get(run.id)
            return snapshot(live) if live is not None else run

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._runs

    def finished_event(self, run_id: str) -> threading.Event | None:
        """An event set once the run is recorded as finished; None if it is not in flight here."""
        with self._lock:
            if run_id not in self._runs:
                return None
            return self._finished.setdefault(run_id, threading.Event())

    def all(self) -> list[Run]:
        """Every run in flight (the records themselves: for shutting down)."""
        with self._lock:
            return list(self._runs.values())

    # ------------------------------------------------------------------ changing

    def add(self, runs: Iterable[Run], claim: bool = False) -> None:
        """Take admitted (QUEUED) runs in; with `claim`, they are RUNNING from the start (a lane
        admits runs that it runs at once: nothing could cancel them while QUEUED)."""
        with self._lock:
            for run in runs:
                if claim:
                    run.status = RunStatus.RUNNING
                self._runs[run.id] = run

    def claim(self, runs: list[Run]) -> list[Run]:
        """Mark admitted runs RUNNING, leaving out those cancelled while they were QUEUED."""
        with self._lock:
            claimed = [run for run in runs if run.status != RunStatus.CANCELLED]
            for run in claimed:
                run.status = RunStatus.RUNNING
        return claimed

    def cancel_queued(self, run_id: str, org: str) -> tuple[RunStatus | None, bool]:
        """Cancel the run if it is QUEUED here (it then never starts), or mark it stopping if
        it is RUNNING; returns (its status before, whether it is in flight here)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.org != org:
                return None, False
            status = RunStatus(run.status)
            if status == RunStatus.QUEUED:
                run.status = RunStatus.CANCELLED
                run.error = RunFailure(ErrorType.SYSTEM.value, NEVER_STARTED)
                run.finished = time.time()  # it never started
            elif status == RunStatus.RUNNING:
                self.stopping.add(run_id)
            return status, True

    def stop_failed(self, run_id: str) -> None:
        """The driver could not stop the run: it is no longer stopping."""
        with self._lock:
            self.stopping.discard(run_id)

    def was_stopped(self, run_id: str) -> bool:
        """Whether the run's stop was asked for (forgetting it: asked once per outcome)."""
        if not self.stopping:
            return False
        with self._lock:
            if run_id in self.stopping:
                self.stopping.discard(run_id)
                return True
        return False

    def settle(self, settled: Iterable[tuple[Run, Settled]]) -> None:
        """Give runs their final state, each at once (readers see all of it or none)."""
        with self._lock:
            for run, final in settled:
                if run.status in _FINISHED:  # a finished run never changes (close() may have failed it)
                    continue
                run.status, run.output, run.error = final.status, final.output, final.error
                if final.logs is not None:
                    run.logs = final.logs
                if final.started is not None:
                    run.started = final.started
                elif run.started is None:
                    run.started = final.finished
                run.finished, run.cold_start = final.finished, final.cold_start

    def remove(self, runs: Iterable[Run], keep: bool = False) -> None:
        """Forget finished runs (with `keep`, runs that could not be recorded stay readable
        here) and wake whoever waits for them."""
        with self._lock:
            events = []
            for run in runs:
                if not keep:
                    self._runs.pop(run.id, None)
                event = self._finished.pop(run.id, None) if self._finished else None
                if event is not None:
                    events.append(event)
        for event in events:
            event.set()

    # ------------------------------------------------------------------ watchers

    def watch(self, callback: Watcher) -> Callable[[], None]:
        """Call `callback(run)` (a snapshot) whenever a run changes status; returns a function
        that stops it."""
        with self._lock:
            self._watchers = (*self._watchers, callback)
            self.watched = True

        def stop() -> None:
            with self._lock:
                self._watchers = tuple(w for w in self._watchers if w is not callback)
                self.watched = bool(self._watchers)

        return stop

    def announce(self, runs: Iterable[Run]) -> None:
        """Tell every watcher of the runs' current state; a watcher that fails is logged."""
        watchers = self._watchers
        if not watchers:
            return
        for run in runs:
            seen = snapshot(self.current(run))  # never the record itself: it changes later
            for watcher in watchers:
                try:
                    watcher(seen)
                except Exception:
                    log.exception("a run watcher failed")


__all__ = ["LiveRuns", "snapshot"]
