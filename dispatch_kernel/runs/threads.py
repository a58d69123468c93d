"""RunThreads: the threads a core runs queued batches on, made when first needed.

A fresh process's first calls take the warm path, on the caller's own thread: it pays for
neither the pool nor concurrent.futures until a batch queues.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


class RunThreads:
    """A ThreadPoolExecutor of `count` threads, made on the first submit()."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._shut = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on one of the threads; RuntimeError once shut down."""
        with self._lock:
            if self._pool is None:
                if self._shut:
                    raise RuntimeError("cannot schedule new futures after shutdown")
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self._count, thread_name_prefix="dispatch-run")
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool, cancel_futures: bool = False) -> None:
        """Take no more work; with `wait`, until what runs has finished."""
        with self._lock:
            self._shut = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)


__all__ = ["RunThreads"]
