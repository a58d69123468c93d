"""What the drivers whose functions run on warm workers share: the pool and the run loop.

A pool keeps a function's workers (processes, containers): started on demand up to
max_workers, reused while warm, reaped after the idle timeout down to min_workers, drained when
the function is redeployed. A PooledDriver hands jobs to them and settles what comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Protocol

from ..model import DeployError, ErrorType, Function, Scaling
from ..runtime.protocol import Failure, Job, Outcome
from ..settings import Settings
from .base import NEVER_STARTED, FaaSDriver, OutcomeSink

log = logging.getLogger(__name__)


class Worker(Protocol):
    """What a pool needs of a worker."""

    digest: str  # the function revision it runs
    last_used: float  # time.monotonic() when it was last released
    cold: bool  # started on demand: its first run waited for it

    def stop(self) -> None:
        """End an idle worker politely."""

    def kill(self) -> None:
        """End the worker now."""

    def interrupt(self) -> None:
        """End the worker's process now, from another thread than the one waiting on it
        (which then sees it end, and cleans up as after a crash)."""


class WorkerPool(ABC):
    """The warm workers of one function: started on demand up to max, reaped when idle.

    A subclass says how a worker starts (`_start_worker`): a forked process, a container.
    `load` is what a new worker is started with (the packaged function, an image).
    """

    def __init__(self, function: Function, load: Any) -> None:
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._count = 0  # workers alive or being started
        self._closed = False
        self.configure(function, load)

    @abstractmethod
    def _start_worker(self, load: Any, digest: str, cold: bool) -> Worker:
        """Start one worker for `load` (the function at `digest`)."""

    def configure(self, function: Function, load: Any) -> None:
        """Take a new revision: new workers load it, old ones are drained."""
        scaling = Scaling(**{**Scaling().__dict__, **function.scaling})
        with self._cond:
            self.function = function
            self.digest = function.digest
            self.scaling = scaling
            self._load = load
            stale = [w for w in self._idle if w.digest != self.digest]
            self._idle = [w for w in self._idle if w.digest == self.digest]
            self._count -= len(stale)
            self._cond.notify_all()
        for worker in stale:
            worker.stop()

    def acquire(self, abandoned: Callable[[], bool] | None = None) -> Worker | None:
        """An idle worker of the current revision, or a new one if under max; else wait.
        None if `abandoned()` turns true while waiting (wake the wait with `wake()`)."""
        with self._cond:
            while True:
                if self._closed:
                    raise DeployError(f"function {self.function.name!r} was undeployed")
                if abandoned is not None and abandoned():
                    return None
                if self._idle:
                    return self._idle.pop()
                if self._count < max(1, self.scaling.max_workers):
                    self._count += 1
                    load, digest = self._load, self.digest
                    break
                self._cond.wait()
        return self._start(load, digest, cold=True)

    def _start(self, load: Any, digest: str, cold: bool) -> Worker:
        """Start a worker the caller has already counted; uncount it if starting fails."""
        try:
            return self._start_worker(load, digest, cold)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def wake(self) -> None:
        """Have waiting acquire() calls look again at whether they are abandoned."""
        with self._cond:
            self._cond.notify_all()

    def release(self, worker: Worker, healthy: bool) -> None:
        """Return a worker after a batch; a broken or outdated one is ended instead."""
        with self._cond:
            keep = healthy and not self._closed and worker.digest == self.digest
            if keep:
                worker.last_used = time.monotonic()
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            if healthy:
                worker.stop()
            else:
                worker.kill()

    def drop_idle(self) -> None:
        """Forget the idle workers (known to be gone: their host died), ending what is left of
        them; the next runs start new ones, up to min_workers again at the next warm_up()."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.kill()

    def reap(self, now: float) -> None:
        """End workers idle longer than the idle timeout, keeping min_workers."""
        with self._cond:
            spare = self._count - self.scaling.min_workers
            expired = [w for w in self._idle if now - w.last_used >= self.scaling.idle_timeout][:max(0, spare)]
            for worker in expired:
                self._idle.remove(worker)
            self._count -= len(expired)
        for worker in expired:
            worker.stop()

    def warm_up(self) -> None:
        """Start workers until min_workers are alive (each started anew, not reused)."""
        while True:
            with self._cond:
                if self._closed or self._count >= self.scaling.min_workers:
                    return
                self._count += 1
                load, digest = self._load, self.digest
            worker = self._start(load, digest, cold=False)
            with self._cond:
                # A redeploy (configure) or a close while it started: it is not wanted now.
                wanted = not self._closed and worker.digest == self.digest
                if wanted:
                    self._idle.append(worker)
                else:
                    self._count -= 1
                self._cond.notify()
            if not wanted:
                worker.stop()

    @property
    def size(self) -> int:
        """Workers alive or starting."""
        return self._count

    @property
    def idle(self) -> int:
        """Workers waiting for work."""
        return len(self._idle)

    def close(self) -> None:
        """End idle workers now; busy ones end when released."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.stop()


class _Batch:
    """Jobs given to one worker at once, while `execute` runs them: which worker has them (None
    while one is awaited) and whether cancel() has stopped it. This is the driver's record of
    its workers, not of the runs: the core keeps the runs, and whether they are cancelled."""

    __slots__ = ("worker", "size", "stopped")

    def __init__(self, size: int) -> None:
        self.worker: Any = None
        self.size = size
        self.stopped = False  # cancel() ended the worker (or kept the job from reaching one)


class PooledDriver(FaaSDriver):
    """A driver that runs each function on a WorkerPool of warm workers."""

    reap_interval = 1.0  # seconds between looks for idle workers to end

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], WorkerPool] = {}
        self._batches: dict[str, _Batch] = {}  # run id -> the batch it is in, while it runs
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name=f"dispatch-{self.name}-reaper",
                                        daemon=True)
        self._reaper.start()

    @abstractmethod
    def _run_batch(self, pool: WorkerPool, worker: Any, jobs: list[Job], function: Function,
                   on_done: OutcomeSink | None) -> tuple[list[Outcome], bool]:
        """Run jobs on one worker; the outcomes it produced (at least one) and whether it is
        still fit. Jobs after a failure that ended the worker are left for another worker.
        Outcomes may be passed to `on_done` as they arrive; execute() passes the rest."""

    def _batch(self, pending: list[Job], function: Function) -> list[Job]:
        """The jobs to give one worker at once (all of them, unless a driver says otherwise)."""
        return pending

    def pool(self, function: Function) -> WorkerPool:
        """The worker pool of a deployed function."""
        try:
            return self._pools[(function.org, function.name)]
        except KeyError:
            raise DeployError(f"function {function.name!r} is not deployed on this host") from None

    def undeploy(self, function: Function) -> None:
        with self._lock:
            pool = self._pools.pop((function.org, function.name), None)
        if pool is not None:
            pool.close()

    def forget(self, function: Function) -> None:
        self.undeploy(function)  # a pool is this process's alone: nothing to remove elsewhere

    def execute(self, function: Function, jobs: list[Job],
                on_done: OutcomeSink | None = None) -> list[Outcome]:
        pool = self.pool(function)
        outcomes: list[Outcome] = []
        reported = 0
        while len(outcomes) < len(jobs):
            jobs_now = self._batch(jobs[len(outcomes):], function)
            batch = _Batch(len(jobs_now))
            with self._lock:
                for job in jobs_now:
                    self._batches[job.run_id] = batch
            try:
                worker = pool.acquire(lambda: batch.stopped)
            except BaseException:
                self._forget(jobs_now)
                raise
            with self._lock:
                batch.worker = worker
                stopped_early = batch.stopped
            if stopped_early:  # cancelled before it reached a worker: never sent
                self._forget(jobs_now)
                if worker is not None:
                    pool.release(worker, True)
                outcomes.append(failed_outcome(jobs_now[0], time.monotonic(), NEVER_STARTED))
                if on_done is not None:  # in order: a later batch may report before execute returns
                    on_done(outcomes[reported:])
                    reported = len(outcomes)
                continue
            assert worker is not None
            sink = _Counting(on_done) if on_done is not None else None
            healthy = False  # unless the batch returns: a worker in an unknown state is ended
            try:
                done, healthy = self._run_batch(pool, worker, jobs_now, function, sink)
            finally:
                self._forget(jobs_now)
                if batch.stopped:
                    healthy = False  # ended by cancel(), perhaps just after it answered
                pool.release(worker, healthy)
            outcomes.extend(done)
            reported += sink.count if sink is not None else 0
            if on_done is not None and reported < len(outcomes):
                on_done(outcomes[reported:])
                reported = len(outcomes)
        return outcomes

    def _forget(self, jobs: list[Job]) -> None:
        with self._lock:
            for job in jobs:
                self._batches.pop(job.run_id, None)

    def cancel(self, function: Function, run_id: str) -> bool:
        """Stop `run_id` when it is all its worker was given: a run still waiting for a worker
        is never sent; a running one ends as if its worker had crashed, and the worker is
        replaced."""
        with self._lock:
            batch = self._batches.get(run_id)
            if batch is None or batch.size != 1:
                return False
            batch.stopped = True
            worker = batch.worker
            if worker is not None:
                # Under the lock: once its batch is forgotten the worker may be gone, and
                # its pid another process's.
                worker.interrupt()
        if worker is None:  # waiting in acquire(): let it see that it is abandoned
            pool = self._pools.get((function.org, function.name))
            if pool is not None:
                pool.wake()
        return True

    def _reap_loop(self) -> None:
        while not self._closed.wait(self.reap_interval):
            now = time.monotonic()
            for pool in list(self._pools.values()):
                try:
                    pool.reap(now)
                except Exception:  # never let one pool stop the reaper
                    log.exception("ending idle workers failed")

    def _close_pools(self) -> None:
        """Stop reaping and close every pool (busy workers end when released)."""
        self._closed.set()
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class _Counting:
    """An OutcomeSink that counts what it has passed on (execute() reports the rest)."""

    __slots__ = ("sink", "count")

    def __init__(self, sink: OutcomeSink) -> None:
        self.sink = sink
        self.count = 0

    def __call__(self, outcomes: list[Outcome]) -> None:
        self.count += len(outcomes)
        self.sink(outcomes)


def failed_outcome(job: Job, started_monotonic: float, message: str,
                   printed: tuple[str, str] = ("", "")) -> Outcome:
    """A SystemError outcome for a job the platform failed (timeout, lost worker), with what
    the run had `printed` (stdout, stderr) by then when the driver could read it."""
    finished = time.time()
    started = finished - (time.monotonic() - started_monotonic)
    return Outcome(job.run_id, None, Failure(ErrorType.SYSTEM.value, message), *printed,
                   started, finished, False)


def settle_batch(worker: Worker, done: list[Outcome]) -> bool:
    """Mark a fresh worker's first run as a cold start; False when the worker reported itself
    unfit (a SystemError such as its memory limit: it exits after answering)."""
    if worker.cold and done:
        worker.cold = False
        done[0] = done[0]._replace(cold_start=True)
    return not (done and done[-1].error is not None and done[-1].error.type == ErrorType.SYSTEM.value)
