"""LoopBridge: results of the core's Futures handed to the event loop, one wake-up per burst.

A `POST runs` that waits holds no request thread: its handler awaits the Future that
RunManager.submit returns, through this bridge.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from functools import partial


class LoopBridge:
    """Hands results of the core's Futures to the event loop, waking it once per burst.

    asyncio.wrap_future wakes the loop (a write to its self-pipe) for every Future; runs of a
    batch finish together, so here the first result of a burst schedules one drain and the
    rest join it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future, Future]] = []

    def wait(self, future: Future) -> asyncio.Future:
        """An asyncio Future that takes `future`'s result or exception, on the running loop."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        future.add_done_callback(partial(self._done, loop, waiter))
        return waiter

    def _done(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future, future: Future) -> None:
        with self._lock:
            self._ready.append((waiter, future))
            first = len(self._ready) == 1
        if first:
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop has closed: the server is stopping
                pass

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter, future in ready:
            if waiter.cancelled():
                continue
            error = future.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(future.result())


__all__ = ["LoopBridge"]
