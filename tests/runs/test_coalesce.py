"""The Coalescer on its own: lanes bound the batches in flight, and what queues meanwhile
leaves together."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dispatch_kernel.runs.coalesce import Coalescer


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


# ---------------------------------------------------------------------------- add_many, take_lane

TIMEOUT = 30.0  # generous: other test runs share the machine


class Lanes:
    """A `start` that keeps the lanes it is given, to run them when the test says."""

    def __init__(self) -> None:
        self.tasks: list = []

    def __call__(self, task) -> None:
        self.tasks.append(task)

    def run_all(self) -> None:
        for task in self.tasks:
            task()


def test_add_many_starts_a_lane_per_item_while_lanes_are_free():
    batches: list[list[int]] = []
    idle: list[Coalescer] = []
    lanes = Lanes()
    coalescer = Coalescer(batches.append, lanes, lambda: 4, on_idle=idle.append)
    coalescer.add_many([1, 2, 3])
    assert len(lanes.tasks) == 3  # one lane for each item that could run beside the others
    coalescer.add_many([4, 5, 6])
    assert len(lanes.tasks) == 4  # the last free lane; the rest wait for one of them
    lanes.run_all()
    assert sorted(item for batch in batches for item in batch) == [1, 2, 3, 4, 5, 6]
    assert idle == [coalescer]  # once, when the last lane ended
    assert coalescer.idle


def test_add_many_of_quick_items_starts_a_lane_per_full_batch():
    sizes: list[int] = []
    lanes = Lanes()
    coalescer = Coalescer(lambda items: sizes.append(len(items)), lanes, lambda: 8,
                          max_batch=64, share=lambda: False)
    coalescer.add_many(list(range(130)))
    assert len(lanes.tasks) == 3  # 64 + 64 + 2, not eight lanes of a few items each
    lanes.run_all()
    assert sizes == [64, 64, 2]

    few = Lanes()
    coalescer = Coalescer(lambda items: sizes.append(len(items)), few, lambda: 8,
                          max_batch=64, share=lambda: False)
    coalescer.add_many(list(range(10)))
    assert len(few.tasks) == 1  # less than a batch still gets its lane


def test_add_many_starts_no_lane_while_every_lane_is_busy():
    batches: list[list[int]] = []
    lanes = Lanes()
    coalescer = Coalescer(batches.append, lanes, lambda: 1)
    coalescer.add(0)
    coalescer.add_many([1, 2])
    assert len(lanes.tasks) == 1
    lanes.run_all()
    assert batches == [[0, 1, 2]]  # the one lane took what queued behind it as one batch


def test_take_lane_gives_the_calling_thread_a_free_lane():
    idle: list[int] = []
    lanes = Lanes()
    coalescer = Coalescer(lambda items: None, lanes, lambda: 1,
                          on_idle=lambda _: idle.append(threading.get_ident()))
    assert coalescer.take_lane() is True
    assert not coalescer.idle  # the caller runs its item as that lane
    coalescer.leave_lane()
    assert lanes.tasks == []  # no hop to another thread
    assert idle == [threading.get_ident()]  # this thread was the last lane
    assert coalescer.idle


def test_take_lane_leaves_the_item_to_the_caller_when_no_lane_is_free():
    batches: list[list[int]] = []
    lanes = Lanes()
    coalescer = Coalescer(batches.append, lanes, lambda: 1)
    coalescer.add(0)  # the only lane is taken (started, not yet running)
    assert coalescer.take_lane() is False
    assert batches == []  # nothing run here, and nothing queued either: the caller adds it
    coalescer.add(1)
    assert len(lanes.tasks) == 1  # no lane beyond the limit
    lanes.run_all()
    assert batches == [[0, 1]]
    assert coalescer.idle


def test_a_lane_the_caller_holds_is_busy_until_it_is_given_back():
    batches: list[list[int]] = []
    lanes = Lanes()
    coalescer = Coalescer(batches.append, lanes, lambda: 1)
    assert coalescer.take_lane() is True
    assert coalescer.take_lane() is False  # one lane, and the caller has it
    coalescer.add(1)
    assert lanes.tasks == []  # waits for the caller's lane
    coalescer.leave_lane()
    assert len(lanes.tasks) == 1  # handed over to a thread of its own
    lanes.run_all()
    assert batches == [[1]]
    assert coalescer.idle


def test_items_that_travel_alone_leave_one_by_one_and_end_a_batch_of_others():
    batches: list[list[str]] = []
    lanes = Lanes()
    coalescer = Coalescer(batches.append, lanes, lambda: 1, share=lambda: False, alone=lambda item: item.startswith("!"))
    for item in ["a", "b", "!c", "d", "!e", "!f", "g"]:
        coalescer.add(item)
    lanes.run_all()
    assert batches == [["a", "b"], ["!c"], ["d"], ["!e"], ["!f"], ["g"]]


def test_items_queued_while_the_caller_holds_the_lane_go_on_on_another_thread():
    ran: list[tuple[list[str], int]] = []
    idle_on: list[int] = []
    idle = threading.Event()

    def on_idle(_) -> None:
        idle_on.append(threading.get_ident())
        idle.set()

    with ThreadPoolExecutor(2) as pool:
        coalescer = Coalescer(lambda items: ran.append((items, threading.get_ident())), pool.submit,
                              lambda: 1, on_idle=on_idle)
        assert coalescer.take_lane() is True
        other = threading.Thread(target=coalescer.add, args=("second",))  # arrives meanwhile
        other.start()
        other.join(TIMEOUT)
        coalescer.leave_lane()
        assert idle.wait(TIMEOUT)
    assert [items for items, _ in ran] == [["second"]]
    assert ran[0][1] != threading.get_ident()  # the caller did not stay to run "second"
    assert idle_on == [ran[0][1]]  # once, by the lane that ended last
    assert coalescer.idle
