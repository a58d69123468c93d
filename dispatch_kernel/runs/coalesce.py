"""Coalescing: runs of one function that arrive together go to its workers together.

A server answering many waited runs at once would otherwise pay, per run, a thread, a store
write, a message to a worker and a wake-up of its own. A Coalescer lets a run start at once
while one of the function's lanes (one per worker it may have) is free; runs that arrive while
every lane is busy wait in a queue, and the next lane to free up takes all of them as one batch.
A lone caller therefore never waits for company, and under load the fixed costs are shared by
a batch. This is the group commit of databases, applied to runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class Coalescer(Generic[Item]):
    """Runs `run_batch(items)` on at most `lanes()` threads at once, batching what queues meanwhile.

    `start(task)` must run `task()` on another thread (an executor's submit). `run_batch` owns
    the items it is given: it must settle each of them, even when it fails; an exception that
    escapes it is logged and the lane goes on with the next batch. `on_idle(self)` is called
    when the last lane ends with nothing queued (an owner may then forget the coalescer).

    `share()` says whether what has queued is shared out among the lanes not running a batch
    (items slow enough that running them side by side pays), or taken whole by the first lane
    free: for quick items one trip with all of them costs far less than several (a REST
    benchmark of trivial runs: 460 µs of server time per run taken whole, 630 shared out).
    `alone(item)` marks items that travel in a batch of their own (a run somebody may want to
    stop on its own, or to see RUNNING only once it runs).
    """

    def __init__(self, run_batch: Callable[[list[Item]], None], start: Callable[[Callable[[], None]], object],
                 lanes: Callable[[], int], *, max_batch: int = 64,
                 on_idle: Callable[[Coalescer[Item]], None] | None = None,
                 share: Callable[[], bool] | None = None,
                 alone: Callable[[Item], bool] | None = None) -> None:
        self._run_batch = run_batch
        self._share = share
        self._alone = alone
        self._start = start
        self._lanes = lanes
        self.max_batch = max(1, max_batch)
        self._on_idle = on_idle
        self._lock = threading.Lock()
        self._queue: list[Item] = []
        self._busy = 0  # lanes alive (started, running a batch, or about to end)
        self._running = 0  # lanes running a batch now

    def add(self, item: Item) -> None:
        """Queue `item`; start a lane for it if one is free."""
        self.add_many([item])

    def add_many(self, items: list[Item]) -> None:
        """Queue `items`; start as many free lanes as they could keep busy."""
        with self._lock:
            self._queue.extend(items)
            free = max(1, self._lanes()) - self._busy
            if self._share is None or self._share():
                wanted = min(free, len(self._queue))
            else:  # quick items: a lane per full batch
                wanted = min(free, -(-len(self._queue) // self.max_batch))
            wanted = max(0, wanted)
            self._busy += wanted
        for started in range(wanted):
            try:
                self._start(self._lane)
            except BaseException:
                with self._lock:
                    self._busy -= wanted - started
                    if started:
                        return  # the lanes that did start take what is queued
                    ours = {id(item) for item in items}
                    left = [queued for queued in self._queue if id(queued) in ours]
                    self._queue = [queued for queued in self._queue if id(queued) not in ours]
                if left:
                    raise
                return  # a running lane took them meanwhile: they run; nothing to report

    def take_lane(self) -> bool:
        """Take a free lane for the calling thread, which then runs one item of its own and
        gives the lane back with leave_lane(); False when every lane is busy (the caller may
        then get ready to wait, and add() its item). A caller that waits anyway saves the hop
        to another thread."""
        with self._lock:
            # Every function has a lane: with none busy, no need to ask how many it has.
            if self._busy and self._busy >= max(1, self._lanes()):
                return False
            self._busy += 1
            self._running += 1
        return True

    def leave_lane(self) -> None:
        """Give back a lane taken with take_lane(): what queued meanwhile goes on on a thread
        of its own."""
        with self._lock:
            self._running -= 1
            handover = bool(self._queue)
            if not handover:
                self._busy -= 1
                idle = not self._busy
        if handover:
            try:
                self._start(self._lane)
            except BaseException:  # only when the owner is closing: it drains the queue
                with self._lock:
                    self._busy -= 1
                log.warning("no thread could take over %d queued item(s)", len(self._queue))
        elif idle and self._on_idle is not None:
            self._on_idle(self)

    def drain(self) -> list[Item]:
        """Take every queued item (for an owner that is closing: no lane will take them)."""
        with self._lock:
            items, self._queue = self._queue, []
        return items

    def _together(self, size: int) -> int:
        """How many items from the head of the queue may leave together (at most `size`): an
        item that travels alone leaves by itself, and ends a batch of others."""
        alone = self._alone
        assert alone is not None
        if alone(self._queue[0]):
            return 1
        for index, item in enumerate(self._queue[1:size], start=1):
            if alone(item):
                return index
        return size

    @property
    def idle(self) -> bool:
        """No lane running and nothing queued."""
        return not self._busy and not self._queue

    def _lane(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._busy -= 1
                    idle = not self._busy
                    break
                size = self.max_batch
                if self._share is None or self._share():
                    # A share per lane not running a batch (this one, and those started but
                    # not yet running), so a burst of slow items is spread over the workers.
                    size = min(size, -(-len(self._queue) // max(1, self._busy - self._running)))
                if self._alone is not None:
                    size = self._together(size)
                batch = self._queue[:size]
                del self._queue[:size]
                self._running += 1
            try:
                self._run_batch(batch)
            except Exception:  # run_batch settles its items; never let one batch stop the lane
                log.exception("a batch of %d coalesced item(s) failed", len(batch))
            except BaseException:  # the thread is going (SystemExit): give its lane back first
                with self._lock:
                    self._running -= 1
                    self._busy -= 1
                raise
            with self._lock:
                self._running -= 1
        if idle and self._on_idle is not None:
            self._on_idle(self)


__all__ = ["Coalescer"]
