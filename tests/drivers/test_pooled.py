"""The warm-worker pool and run loop every pooled driver shares, through a driver whose workers
are plain Python objects: the pool logic is the same whatever a worker is, and the real
workers (processes, containers) have their own tests beside this one."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dispatch_kernel.drivers.base import NEVER_STARTED, Runs
from dispatch_kernel.drivers.pooled import PooledDriver, WorkerPool, settle_batch
from dispatch_kernel.model import DeployError, Function
from dispatch_kernel.runtime.protocol import Failure, Job, Outcome
from dispatch_kernel.settings import Settings

TIMEOUT = 30.0  # generous: other test runs share the machine's two cores


def function(digest: str = "rev-1", **scaling) -> Function:
    return Function(name="f", digest=digest,
                    scaling={"min_workers": 0, "max_workers": 2, "idle_timeout": 300.0, **scaling})


def job(run_id: str, command: str = "echo") -> Job:
    """A job for the fake worker: "echo" answers at once, "wait" until its gate opens (or the
    worker is interrupted), "stubborn" until its gate opens whatever happens, "crash" fails
    like a lost worker and "raise" breaks the driver itself."""
    return Job(run_id, (command,), {}, None)


def eventually(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


class FakeWorker:
    """A worker that is a plain object and remembers how it was ended."""

    def __init__(self, digest: str, cold: bool, load: object) -> None:
        self.digest = digest
        self.cold = cold
        self.load = load
        self.last_used = time.monotonic()
        self.ends: list[str] = []  # "stop" / "kill", in the order they were asked for
        self.interrupted = threading.Event()

    def stop(self) -> None:
        self.ends.append("stop")

    def kill(self) -> None:
        self.ends.append("kill")

    def interrupt(self) -> None:
        self.interrupted.set()


class FakePool(WorkerPool):
    def __init__(self, function: Function, load: object) -> None:
        self.started: list[FakeWorker] = []  # every worker this pool started, in order
        self.starting = threading.Event()  # a start has begun
        self.hold: threading.Event | None = None  # when set, a start waits for it
        super().__init__(function, load)

    def _start_worker(self, load, digest, cold):
        self.starting.set()
        if self.hold is not None:
            assert self.hold.wait(TIMEOUT)
        worker = FakeWorker(digest, cold, load)
        self.started.append(worker)
        return worker


class FakeDriver(PooledDriver):
    name = "fake"
    runs = Runs.ENVIRONMENT
    reap_interval = 0.05  # so the reaper test does not wait seconds for it
    report_last = False  # like the local driver: execute() reports a batch's last outcome

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.arrived: queue.Queue[tuple[str, FakeWorker]] = queue.Queue()
        self._gates: dict[str, threading.Event] = {}
        self._gates_lock = threading.Lock()
        self._running_lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.open_all = threading.Event()  # teardown: no job may keep a thread waiting

    def gate(self, run_id: str) -> threading.Event:
        with self._gates_lock:
            return self._gates.setdefault(run_id, threading.Event())

    def deploy(self, function, source, artifact, progress=None):
        key = (function.org, function.name)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = FakePool(function, artifact)
            else:
                pool.configure(function, artifact)
        pool.warm_up()

    def is_deployed(self, function):
        pool = self._pools.get((function.org, function.name))
        return pool is not None and pool.digest == function.digest

    def _run_batch(self, pool, worker, jobs, function, on_done):
        with self._running_lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            done: list[Outcome] = []
            for one in jobs:
                self.arrived.put((one.run_id, worker))
                batch = [self._run_job(worker, one)]
                fit = settle_batch(worker, batch)
                done.extend(batch)
                if on_done is not None and (self.report_last or len(done) < len(jobs)):
                    on_done(batch)
                if not fit:  # the rest of the batch is left for another worker
                    return done, False
            return done, True
        finally:
            with self._running_lock:
                self.running -= 1

    def _run_job(self, worker: FakeWorker, one: Job) -> Outcome:
        command = one.args[0]
        started = time.time()
        if command == "raise":
            raise RuntimeError("the driver broke")
        if command in ("wait", "stubborn"):
            gate, deadline = self.gate(one.run_id), time.monotonic() + TIMEOUT
            while not (gate.wait(0.01) or self.open_all.is_set()):
                if command == "wait" and worker.interrupted.is_set():
                    command = "crash"  # an interrupted worker's process is gone
                    break
                if time.monotonic() > deadline:
                    return outcome(one, started, Failure("SystemError", "the test never opened the gate"))
        if command == "crash":
            return outcome(one, started, Failure("SystemError", "the worker process ended"))
        return outcome(one, started, None)

    def close(self):
        self.open_all.set()
        self._close_pools()


def outcome(one: Job, started: float, error: Failure | None) -> Outcome:
    output = None if error else repr(one.run_id).encode()
    return Outcome(one.run_id, output, error, "", "", started, time.time(), False)


@pytest.fixture
def driver(tmp_path):
    the_driver = FakeDriver(Settings(home=tmp_path))
    yield the_driver
    the_driver.close()


@pytest.fixture
def calls(driver):
    """Threads that call driver.execute() at once, as the core does."""
    with ThreadPoolExecutor(8, thread_name_prefix="execute") as pool:
        yield pool
        driver.open_all.set()  # a failed test must not leave a call waiting for its gate


def deployed(driver: FakeDriver, **scaling) -> tuple[Function, FakePool]:
    fn = function(**scaling)
    driver.deploy(fn, None, "load-1")
    return fn, driver.pool(fn)


# ---------------------------------------------------------------------------- the pool


def test_a_worker_is_started_on_demand_released_and_reused():
    pool = FakePool(function(), "load-1")
    assert (pool.size, pool.idle) == (0, 0)  # nothing starts before it is needed
    worker = pool.acquire()
    assert (worker.digest, worker.load, worker.cold) == ("rev-1", "load-1", True)
    assert (pool.size, pool.idle) == (1, 0)
    pool.release(worker, True)
    assert (pool.size, pool.idle) == (1, 1)
    assert pool.acquire() is worker
    assert len(pool.started) == 1
    pool.release(worker, True)
    pool.close()


def test_warm_up_starts_min_workers_and_reap_ends_only_the_idle_ones_past_it():
    pool = FakePool(function(min_workers=2, max_workers=4, idle_timeout=60.0), "load-1")
    pool.warm_up()
    assert (pool.size, pool.idle) == (2, 2)
    assert [w.cold for w in pool.started] == [False, False]  # warm: no run waited for them
    workers = [pool.acquire() for _ in range(4)]  # the two warm ones, then two new ones
    assert len(pool.started) == 4
    for worker in workers:
        pool.release(worker, True)
    released = max(w.last_used for w in workers)

    pool.reap(released + 59.0)  # not idle long enough yet
    assert pool.size == 4
    pool.reap(released + 60.0)
    assert (pool.size, pool.idle) == (2, 2)  # min_workers stay however long they idle
    assert sorted(len(w.ends) for w in workers) == [0, 0, 1, 1]
    assert all(w.ends in ([], ["stop"]) for w in workers)  # an idle worker is ended politely
    pool.reap(released + 10_000.0)
    assert pool.size == 2
    pool.close()


def test_reap_never_counts_a_busy_worker_as_idle():
    pool = FakePool(function(min_workers=0, idle_timeout=1.0), "load-1")
    busy = pool.acquire()
    pool.reap(time.monotonic() + 1000.0)
    assert pool.size == 1 and busy.ends == []
    pool.release(busy, True)
    pool.close()


def test_the_reaper_ends_idle_workers_after_the_idle_timeout(driver):
    fn, pool = deployed(driver, idle_timeout=0.2)
    assert driver.execute(fn, [job("r1")])[0].error is None
    worker = pool.started[0]
    eventually(lambda: pool.size == 0, "the reaper ended the idle worker")
    assert worker.ends == ["stop"]
    assert driver.execute(fn, [job("r2")])[0].error is None  # a new worker starts on demand
    assert len(pool.started) == 2


def test_a_new_revision_drains_idle_old_workers_and_ends_busy_ones_when_released():
    pool = FakePool(function(), "load-1")
    idle, busy = pool.acquire(), pool.acquire()
    pool.release(idle, True)
    pool.configure(function("rev-2"), "load-2")
    assert idle.ends == ["stop"]
    assert (pool.size, pool.idle) == (1, 0)  # the busy old worker still counts until it is back
    assert busy.ends == []
    pool.release(busy, True)
    assert busy.ends == ["stop"]  # healthy but outdated: ended, not kept
    assert (pool.size, pool.idle) == (0, 0)
    fresh = pool.acquire()
    assert (fresh.digest, fresh.load) == ("rev-2", "load-2")
    pool.release(fresh, True)
    pool.close()


def test_an_unhealthy_worker_is_killed_not_kept():
    pool = FakePool(function(), "load-1")
    worker = pool.acquire()
    pool.release(worker, False)
    assert worker.ends == ["kill"]
    assert pool.size == 0
    assert pool.acquire() is not worker
    pool.close()


def test_close_ends_idle_workers_now_busy_ones_when_released_and_refuses_more_work():
    pool = FakePool(function(), "load-1")
    idle, busy = pool.acquire(), pool.acquire()
    pool.release(idle, True)
    pool.close()
    assert idle.ends == ["stop"] and busy.ends == []
    with pytest.raises(DeployError, match="undeployed"):
        pool.acquire()
    pool.release(busy, True)
    assert busy.ends == ["stop"]
    assert pool.size == 0


def test_a_worker_warming_up_while_a_new_revision_arrives_never_runs_the_new_one():
    pool = FakePool(function(min_workers=1), "load-1")
    pool.hold = threading.Event()
    warming = threading.Thread(target=pool.warm_up, daemon=True)
    warming.start()
    assert pool.starting.wait(TIMEOUT)
    pool.configure(function("rev-2", min_workers=1), "load-2")  # while the old one starts
    pool.hold.set()
    warming.join(TIMEOUT)
    pool.hold = None
    worker = pool.acquire()
    assert worker.digest == "rev-2"
    pool.release(worker, True)
    pool.close()


def test_a_worker_warming_up_while_the_pool_closes_is_ended():
    pool = FakePool(function(min_workers=1), "load-1")
    pool.hold = threading.Event()
    warming = threading.Thread(target=pool.warm_up, daemon=True)
    warming.start()
    assert pool.starting.wait(TIMEOUT)
    pool.close()  # undeployed while its first worker starts
    pool.hold.set()
    warming.join(TIMEOUT)
    assert pool.started[0].ends == ["stop"]
    assert pool.size == 0


# ---------------------------------------------------------------------------- the driver


def test_execute_runs_jobs_on_a_warm_worker_and_marks_only_a_cold_start(driver):
    fn, pool = deployed(driver)
    first = driver.execute(fn, [job("r1")])
    second = driver.execute(fn, [job("r2"), job("r3")])
    assert [o.run_id for o in first + second] == ["r1", "r2", "r3"]
    assert all(o.error is None for o in first + second)
    assert [o.cold_start for o in first + second] == [True, False, False]
    assert len(pool.started) == 1 and pool.idle == 1  # one worker, reused


def test_warm_workers_started_by_deploy_make_no_cold_start(driver):
    fn, pool = deployed(driver, min_workers=1)
    assert (pool.size, pool.idle) == (1, 1)
    assert driver.execute(fn, [job("r1")])[0].cold_start is False


def test_max_workers_bounds_the_runs_at_once_however_many_threads_execute(driver, calls):
    fn, pool = deployed(driver, max_workers=2)
    runs = [calls.submit(driver.execute, fn, [job(f"r{i}", "wait")]) for i in range(6)]
    first = {driver.arrived.get(timeout=TIMEOUT)[0] for _ in range(2)}
    assert pool.size == 2  # the other four wait for one of these two workers
    for i in range(6):  # open every gate: the waiting runs then go through as workers free up
        driver.gate(f"r{i}").set()
    outcomes = [run.result(TIMEOUT)[0] for run in runs]
    assert all(o.error is None for o in outcomes)
    assert len(first) == 2
    assert driver.most_running == 2
    assert len(pool.started) == 2


def test_a_lost_worker_fails_its_job_and_the_rest_of_the_batch_runs_on_another(driver):
    fn, pool = deployed(driver)
    reported: list[list[str]] = []
    outcomes = driver.execute(fn, [job("r1"), job("r2", "crash"), job("r3")],
                              lambda batch: reported.append([o.run_id for o in batch]))
    assert [o.run_id for o in outcomes] == ["r1", "r2", "r3"]
    assert [o.error.type if o.error else None for o in outcomes] == [None, "SystemError", None]
    assert [run_id for batch in reported for run_id in batch] == ["r1", "r2", "r3"]  # each once, in order
    lost, replacement = pool.started
    assert lost.ends == ["kill"] and replacement.ends == []


def test_a_driver_that_raises_in_run_batch_loses_the_worker_and_the_error_reaches_the_caller(driver):
    fn, pool = deployed(driver)
    with pytest.raises(RuntimeError, match="the driver broke"):
        driver.execute(fn, [job("r1", "raise")])
    assert pool.started[0].ends == ["kill"]  # in an unknown state: never handed out again
    assert pool.size == 0
    assert driver.cancel(fn, "r1") is False  # the run is forgotten
    assert driver.execute(fn, [job("r2")])[0].error is None
    assert len(pool.started) == 2


def test_cancel_interrupts_the_worker_of_a_run_alone_on_it_and_the_worker_is_replaced(driver, calls):
    fn, pool = deployed(driver)
    call = calls.submit(driver.execute, fn, [job("r1", "wait")])
    _, worker = driver.arrived.get(timeout=TIMEOUT)
    assert driver.cancel(fn, "r1") is True
    [stopped] = call.result(TIMEOUT)
    assert worker.interrupted.is_set()
    assert stopped.error.type == "SystemError"
    assert worker.ends == ["kill"] and pool.size == 0
    assert driver.cancel(fn, "r1") is False  # over: nothing left to stop
    driver.execute(fn, [job("r2")])
    assert driver.arrived.get(timeout=TIMEOUT)[1] is not worker


def test_a_worker_that_answers_just_as_its_run_is_cancelled_is_not_reused(driver, calls):
    fn, pool = deployed(driver)
    call = calls.submit(driver.execute, fn, [job("r1", "stubborn")])
    _, worker = driver.arrived.get(timeout=TIMEOUT)
    assert driver.cancel(fn, "r1") is True
    driver.gate("r1").set()  # it answers although it was told to stop
    assert call.result(TIMEOUT)[0].error is None
    assert worker.ends == ["kill"]  # its process may be on its way out: never handed out again
    assert pool.size == 0


def test_cancel_refuses_a_run_that_shares_its_worker_with_others(driver, calls):
    fn, pool = deployed(driver)
    call = calls.submit(driver.execute, fn, [job("r1", "wait"), job("r2", "wait")])
    _, worker = driver.arrived.get(timeout=TIMEOUT)
    assert driver.cancel(fn, "r1") is False  # stopping it would take r2 with it
    assert driver.cancel(fn, "r2") is False
    assert not worker.interrupted.is_set()
    driver.gate("r1").set()
    driver.gate("r2").set()
    assert [o.error for o in call.result(TIMEOUT)] == [None, None]
    assert worker.ends == [] and pool.idle == 1


def test_cancel_keeps_a_run_waiting_for_a_worker_from_ever_starting(driver, calls):
    fn, pool = deployed(driver, max_workers=1)
    busy = calls.submit(driver.execute, fn, [job("a", "wait")])
    assert driver.arrived.get(timeout=TIMEOUT)[0] == "a"
    waiting = calls.submit(driver.execute, fn, [job("b")])
    # True once execute() has taken the run in; from then on it never reaches a worker.
    eventually(lambda: driver.cancel(fn, "b"), "cancel() found the waiting run")
    [never] = waiting.result(TIMEOUT)  # returns while the only worker is still busy
    assert never.run_id == "b"
    assert never.error.type == "SystemError" and never.error.message == NEVER_STARTED
    assert never.output is None
    driver.gate("a").set()
    assert busy.result(TIMEOUT)[0].error is None
    assert driver.arrived.empty()  # b was never sent
    assert (pool.size, pool.idle) == (1, 1)


class OneAtATimeDriver(FakeDriver):
    """Gives a worker one job at a time and reports every outcome as it arrives (both allowed)."""

    report_last = True

    def _batch(self, pending, function):
        return pending[:1]


def test_on_done_gets_a_never_started_outcome_in_its_place(tmp_path):
    driver = OneAtATimeDriver(Settings(home=tmp_path))
    calls = ThreadPoolExecutor(2)
    try:
        fn, _ = deployed(driver, max_workers=1)
        busy = calls.submit(driver.execute, fn, [job("a", "wait")])
        assert driver.arrived.get(timeout=TIMEOUT)[0] == "a"
        reported: list[str] = []
        waiting = calls.submit(driver.execute, fn, [job("b1"), job("b2")],
                               lambda batch: reported.extend(o.run_id for o in batch))
        eventually(lambda: driver.cancel(fn, "b1"), "cancel() found the waiting run")
        driver.gate("a").set()
        assert [o.run_id for o in waiting.result(TIMEOUT)] == ["b1", "b2"]
        busy.result(TIMEOUT)
        assert reported == ["b1", "b2"]  # consecutive slices of what execute() returns
    finally:
        driver.close()  # opens every gate first, so the calls can end
        calls.shutdown()


def test_close_ends_the_workers_and_the_function_is_no_longer_deployed(driver):
    fn, pool = deployed(driver, min_workers=1)
    worker = pool.started[0]
    driver.close()
    assert worker.ends == ["stop"]
    assert not driver.is_deployed(fn)
    with pytest.raises(DeployError, match="not deployed"):
        driver.execute(fn, [job("r1")])
