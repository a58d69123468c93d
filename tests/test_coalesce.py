"""The Coalescer on its own: lanes bound the batches in flight, and what queues meanwhile
leaves together."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dispatch_kernel.coalesce import Coalescer


def test_a_lone_item_runs_at_once_and_items_queued_behind_busy_lanes_leave_together():
    gate = threading.Event()
    batches: list[list[int]] = []
    running = 0
    most_running = 0
    lock = threading.Lock()

    def run_batch(items: list[int]) -> None:
        nonlocal running, most_running
        with lock:
            running += 1
            most_running = max(most_running, running)
            batches.append(items)
        gate.wait(10)
        with lock:
            running -= 1

    idle = threading.Event()
    with ThreadPoolExecutor(8) as pool:
        coalescer = Coalescer(run_batch, pool.submit, lambda: 2, on_idle=lambda _: idle.set())
        coalescer.add(0)
        coalescer.add(1)  # both lanes busy now
        deadline = time.monotonic() + 10
        while len(batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for item in range(2, 12):
            coalescer.add(item)
        assert not coalescer.idle
        gate.set()
        assert idle.wait(10)
    assert sorted(batches[:2]) == [[0], [1]]
    assert sorted(item for batch in batches for item in batch) == list(range(12))
    assert len(batches) <= 4  # the ten queued items left in at most two batches
    assert most_running <= 2
    assert coalescer.idle


def test_a_failing_batch_is_logged_and_the_lane_goes_on(caplog):
    seen: list[int] = []
    done = threading.Event()

    def run_batch(items: list[int]) -> None:
        seen.extend(items)
        if items == [0]:
            raise ValueError("boom")

    with ThreadPoolExecutor(2) as pool:
        coalescer = Coalescer(run_batch, pool.submit, lambda: 1, on_idle=lambda _: done.set())
        coalescer.add(0)
        assert done.wait(10)
        done.clear()
        coalescer.add(1)
        assert done.wait(10)
    assert seen == [0, 1]
    assert "a batch of 1 coalesced item(s) failed" in caplog.text


def test_an_item_that_cannot_be_started_is_not_kept():
    def refuse(task):
        raise RuntimeError("cannot schedule new futures after shutdown")

    coalescer = Coalescer(lambda items: None, refuse, lambda: 1)
    try:
        coalescer.add(1)
    except RuntimeError:
        pass
    else:
        raise AssertionError("add() should have raised")
    assert coalescer.idle


@pytest.mark.parametrize(("share", "largest"), [
    (None, range(1, 26)),  # a quarter each at most, not 64 on one worker while three are idle
    (lambda: False, range(64, 65)),  # quick items: one trip with as many as a batch may hold
])
def test_a_burst_is_shared_by_every_lane_unless_its_items_are_quick(share, largest):
    gate = threading.Event()
    sizes: list[int] = []
    lock = threading.Lock()

    def run_batch(items: list[int]) -> None:
        with lock:
            sizes.append(len(items))
        gate.wait(10)

    idle = threading.Event()
    with ThreadPoolExecutor(8) as pool:
        coalescer = Coalescer(run_batch, lambda task: pool.submit(lambda: (time.sleep(0.05), task())),
                              lambda: 4, on_idle=lambda _: idle.set(), share=share)
        for item in range(100):  # four lanes start; they find the queue full when they run
            coalescer.add(item)
        gate.set()
        assert idle.wait(10)
    assert sum(sizes) == 100
    assert max(sizes) in largest
