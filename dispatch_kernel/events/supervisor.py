"""Supervisor: long-running coroutines (event sources, bus consumers) on one background event
loop, each restarted with exponential backoff when it fails, and cancelled when stopped."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

Factory = Callable[[], Awaitable[None]]
StatusCallback = Callable[[str, str, str], None]  # (name, status, reason)


class Supervisor:
    """Runs named coroutines on a daemon thread's event loop and keeps them running."""

    def __init__(self, *, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 healthy_after: float = 30.0) -> None:
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after  # seconds up after which a failure starts over at base
        self.loop = asyncio.new_event_loop()
        self._tasks: dict[str, asyncio.Task] = {}
        self.restarts: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run_loop, name="dispatch-events-loop", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Awaitable[Any], timeout: float | None = 30.0) -> Any:
        """Run a coroutine on the loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Awaitable[Any]) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self, name: str, factory: Factory, on_status: StatusCallback | None = None) -> None:
        """Run `factory()` as `name` until stopped; a failure or a return restarts it after backoff.
        Callable from any thread, the loop's own included."""
        def begin() -> None:
            if name in self._tasks and not self._tasks[name].done():
                return
            self._tasks[name] = self.loop.create_task(self._keep(name, factory, on_status), name=name)

        self.loop.call_soon_threadsafe(begin)

    async def _keep(self, name: str, factory: Factory, on_status: StatusCallback | None) -> None:
        failures = 0
        while True:
            began = time.monotonic()
            _report(on_status, name, "RUNNING", "")
            try:
                await factory()
                reason = "it returned"
            except asyncio.CancelledError:
                _report(on_status, name, "STOPPED", "")
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("%s failed (%s); restarting", name, reason)
            if time.monotonic() - began > self.healthy_after:
                failures = 0
            failures += 1
            self.restarts[name] = self.restarts.get(name, 0) + 1
            delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
            _report(on_status, name, "ERROR", f"{reason}; restarting in {delay:g}s")
            await asyncio.sleep(delay)

    async def stop_async(self, name: str) -> None:
        """Cancel `name` and wait until it has ended (on the loop)."""
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """Cancel `name` and wait until it has ended."""

        if self.loop.is_running():
            self.call(self.stop_async(name), timeout)

    def names(self) -> list[str]:
        return [name for name, task in list(self._tasks.items()) if not task.done()]

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and stop the loop."""
        if not self.loop.is_running():
            return

        async def cancel_all() -> None:
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(cancel_all(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()


def _report(callback: StatusCallback | None, name: str, status: str, reason: str) -> None:
    if callback is None:
        return
    try:
        callback(name, status, reason)
    except Exception:
        log.exception("reporting the status of %s failed", name)
