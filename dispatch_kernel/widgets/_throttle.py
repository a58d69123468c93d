"""Coalesce many "something changed" signals into at most a few re-renders per second."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class Throttle:
    """Calls `action` on a daemon thread after `poke()`, at most once every `interval` seconds.

    Pokes that arrive while waiting or while `action` runs are folded into the next call, so a
    burst of thousands of pokes costs a handful of calls. The first poke after a quiet spell
    acts at once: a single run shows up without delay. The thread starts on a poke and ends
    after `idle` seconds without one, so a widget nobody closed holds no thread for long.
    """

    def __init__(self, action: Callable[[], None], interval: float = 0.25, *, idle: float = 5.0,
                 name: str = "throttle") -> None:
        self.action = action
        self.interval = interval
        self.idle = idle
        self._name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Guards starting and retiring the thread, so a poke is never left without one.
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last = float("-inf")

    def poke(self) -> None:
        """Ask for a call; cheap and safe from any thread."""
        with self._lock:
            self._wake.set()
            if self._thread is None and not self._stop.is_set():
                # A daemon: a notebook's kernel must be able to exit with a widget still open.
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread; a call in progress finishes first (waited for up to `timeout`)."""
        with self._lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _loop(self) -> None:
        while True:
            if not self._wake.wait(self.idle):
                with self._lock:
                    if not self._wake.is_set():  # a poke under the lock would have set it
                        self._thread = None
                        return
            if self._stop.is_set():
                return
            delay = self._last + self.interval - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            # Cleared before acting, so a poke during the action schedules one more call.
            self._wake.clear()
            self._last = time.monotonic()
            try:
                self.action()
            except Exception:  # a failed render must not end live updates; never print from here
                log.exception("%s: a throttled update failed", self._name)
