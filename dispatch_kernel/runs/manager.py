"""RunManager: every run, whatever asked for it, goes through one submit path.

    call, run(wait)        the caller's thread runs the batch itself when a lane is free
    spawn, invoke(no wait), event runs
                           recorded QUEUED at once, then run on a core thread
    submit                 a Future, for an event loop (a REST request that waits)
    map                    chunks of calls, results in order

Each entry point makes Calls (calls.py) and hands them to the function's Coalescer (coalesce.py),
whose lanes (one per worker the function may have) take what has queued as one batch. A batch is
then admitted (inputs checked against the schema, runs recorded), claimed (RUNNING), run on the
function's driver, settled (settle.py) and recorded, and every waiter is told, whatever happens.
The batching policy is the coalescer's, the same for every entry point: runs quicker than
SHARE_RUNS_ABOVE (learned per function) leave together, up to MAX_BATCH; slower ones are spread
over the free lanes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable

from ..functions import Deployed, FunctionManager, max_workers
from ..hosts import HostLease
from ..model import ConflictError, DispatchError, ErrorType, InvalidRequestError, Run, RunStatus
from ..runtime.protocol import Job, Outcome
from ..secrets import SecretManager
from ..settings import Settings
from ..store.base import EntityStore
from .calls import Call, Chunk, json_call, python_call, resolve_future
from .coalesce import Coalescer
from .live import LiveRuns, Watcher, snapshot
from .settle import failed, final_state, settle_interrupted
from .threads import RunThreads

if TYPE_CHECKING:
    from concurrent.futures import Future

log = logging.getLogger(__name__)

MAX_BATCH = 512  # runs per message to a worker: amortizes I/O, bounds a retry
FIRST_CHUNK = 8  # map()'s first chunk; each next one doubles, up to MAX_BATCH
# Runs quicker than this on average leave all together when they queue: another trip to
# another worker costs more than running them one after another.
SHARE_RUNS_ABOVE = 0.001
CANCEL_WAIT = 10.0  # seconds cancel_run() waits for a stopped run to be recorded
CANCEL_REACH = 0.1  # seconds cancel_run() keeps asking the driver about a run just started
STORE_POLL = 0.02  # seconds between looks at the store for a run of another process

Key = tuple[str, str]  # (org, function name)


class RunManager:
    """Runs of every function: starting them, their state in flight, waiting and cancelling."""

    def __init__(self, settings: Settings, store: EntityStore, functions: FunctionManager,
                 secrets: SecretManager, host: str) -> None:
        self.store = store
        self.functions = functions
        self.secrets = secrets
        self.host = host
        self.live = LiveRuns()
        self._json_output = settings.isolated  # an isolated core never unpickles an output
        self._threads = RunThreads(settings.run_threads)
        self._coalescers: dict[Key, Coalescer[Call]] = {}
        self._coalescer_lock = threading.Lock()
        self._run_seconds: dict[Key, float] = {}  # recent mean run time, per function
        self._closed = False

    # ------------------------------------------------------------------ entry points

    def call(self, name: str, args: tuple = (), kwargs: dict[str, Any] | None = None, *, org: str) -> Any:
        """Run the function with Python arguments and return its output; RunError on failure."""
        deployed = self.functions.resolve(org, name)
        return self._wait_here(deployed, python_call(deployed.function, tuple(args), dict(kwargs or {}))).result()

    def run(self, name: str, args: tuple = (), kwargs: dict[str, Any] | None = None, *,
            wait: bool = True, org: str, driver: str | None = None) -> Run:
        """Run the function with Python arguments; the run record, finished when `wait`,
        else QUEUED. `driver` pins the run to one of the function's drivers."""
        deployed = _pinned(self.functions.resolve(org, name), driver)
        call = python_call(deployed.function, tuple(args), dict(kwargs or {}), driver=driver)
        if wait:
            return self._wait_here(deployed, call)
        call.alone = True
        return self._start(deployed, [call])[0]

    def spawn(self, name: str, args: tuple = (), kwargs: dict[str, Any] | None = None, *, org: str,
              driver: str | None = None) -> Run:
        """Start a run with Python arguments without waiting; returns the QUEUED run."""
        return self.run(name, args, kwargs, wait=False, org=org, driver=driver)

    def invoke(self, name: str, input: Any = None, *, wait: bool = True, org: str,
               event: dict[str, Any] | None = None, http: dict[str, Any] | None = None,
               run_id: str | None = None, driver: str | None = None) -> Run:
        """Run the function with a JSON input (protocol.arguments maps it to arguments); the
        run record, finished when `wait`, else QUEUED."""
        deployed = _pinned(self.functions.resolve(org, name), driver)
        call = json_call(deployed.function, input, event=event, http=http, run_id=run_id, driver=driver)
        if wait:
            return self._wait_here(deployed, call)
        call.alone = True
        return self._start(deployed, [call])[0]

    def submit(self, name: str, input: Any = None, *, org: str,
               python: tuple[tuple, dict[str, Any]] | None = None,
               http: dict[str, Any] | None = None, driver: str | None = None) -> Future:
        """Start a run and return at once a Future of its finished record, resolved on a core
        thread: nothing here blocks, so an event loop may call it.

        The input is JSON as for invoke(), or `python=(args, kwargs)` for a Python call; `http`
        is the request of an API route (the run's `http`, the function's ctx.http). The
        function is resolved, and the run recorded, when its batch starts. The Future fails
        with the DispatchError of an unknown or unready function; a run that fails is a FAILED
        run, as with invoke().
        """
        if self._closed:
            raise DispatchError("the core is closed")
        from concurrent.futures import Future

        future: Future = Future()
        self._coalescer((org, name)).add(Call(input=input, python=python, http=http,
                                              waiter=partial(resolve_future, future), driver=driver))
        return future

    def map(self, name: str, items: Iterable[Any], *, org: str, return_exceptions: bool = False) -> Iterator[Any]:
        """Outputs of one run per item, in order, fanned out over the function's workers.

        A tuple item is the positional arguments; any other item is the single argument (the
        payload, for handle(ctx, payload)). A failed run raises its RunError when reached,
        unless `return_exceptions`, which yields it instead.
        """
        deployed = self.functions.resolve(org, name)
        function = deployed.function
        dispatch_style = function.convention == "dispatch"
        coalescer = self._coalescer((org, name))
        # Resolved once, like every entry point but submit: its chunks are admitted here.

        def outputs() -> Iterator[Any]:
            window: deque[Chunk] = deque()
            limit = 2 * max_workers(function)
            iterator, size = iter(items), FIRST_CHUNK
            while True:
                while len(window) < limit:
                    taken = list(islice(iterator, size))
                    if not taken:
                        break
                    chunk = Chunk(len(taken))
                    chunk.calls = [python_call(function, item if isinstance(item, tuple) and not dispatch_style
                                               else (item,), {}, waiter=chunk.one_done) for item in taken]
                    if self._closed:
                        raise DispatchError("the core is closed")
                    # Recorded QUEUED here, as the caller goes on: listed at once, and the
                    # store write overlaps the runs of the chunks before it.
                    ready = self._admit(deployed, chunk.calls)
                    if ready:
                        coalescer.add_many(ready)
                    window.append(chunk)
                    size = min(size * 2, MAX_BATCH)
                if not window:
                    return
                chunk = window.popleft()
                chunk.finished.wait()
                for call in chunk.calls:
                    if call.exception is not None:
                        raise call.exception
                    yield call.run.result(return_exceptions)

        return outputs()

    def start_event_runs(self, items: list[tuple[str, str, Any, dict[str, Any], str]], *,
                         tags: dict[str, str] | None = None) -> list[Exception | None]:
        """Non-blocking runs for event deliveries in bulk: each item is (org, function, input,
        event, run_id), with invoke()'s JSON input mapping. Runs of one function are recorded
        together and leave in batches, which is what lets a bus keep up with thousands of
        events a second. Returns, per item, None when its run is recorded or the exception
        that kept it from being (to retry the delivery). `tags` go on every run (a replay's link).
        """
        results: list[Exception | None] = [None] * len(items)
        groups: dict[Key, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault((item[0], item[1]), []).append(index)
        for (org, name), indexes in groups.items():
            try:
                deployed = self.functions.resolve(org, name)
                calls = [json_call(deployed.function, items[i][2], event=items[i][3], run_id=items[i][4],
                                   tags=tags) for i in indexes]
                self._start(deployed, calls)
            except Exception as exc:
                for index in indexes:
                    results[index] = exc
        if self.store.shared:
            # The bus acknowledges an event once this returns: its run must then be where every
            # server can see it, not only in this server's journal, which dies with the server.
            try:
                self.store.flush()
            except DispatchError as exc:  # not acknowledged: the bus delivers them again
                results = [result or exc for result in results]
        return results

    # ------------------------------------------------------------------ reading runs

    def get_run(self, run_id: str, org: str, *, wait: float = 0.0) -> Run:
        """The run with that id (a snapshot of its live state while it is in flight here);
        with `wait`, once it has finished or `wait` seconds have passed, whichever is first."""
        if wait > 0:
            try:
                return self.wait_run(run_id, wait, org=org)
            except TimeoutError:
                pass
        return self.live.get(run_id, org) or self.store.get_run(org, run_id)

    def list_runs(self, org: str, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        """Runs newest first, with this process's live state (snapshots) for runs in flight."""
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        if status is not None:
            try:
                status = RunStatus(status.upper()).value
            except ValueError:
                raise InvalidRequestError(
                    f"unknown run status {status!r} (one of {', '.join(s.value for s in RunStatus)})"
                ) from None
        runs = self.store.list_runs(org, function=function, status=status, since=since, before=before,
                                    limit=limit)
        return [self.live.current(run) for run in runs]

    def wait_run(self, run_id: str, timeout: float | None = None, *, org: str) -> Run:
        """The run once it has finished; TimeoutError if it has not within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = self.live.finished_event(run_id)
        if finished is not None and not finished.wait(timeout):
            raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s")
        while True:
            run = self.get_run(run_id, org)
            if RunStatus(run.status).finished:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s")
            time.sleep(STORE_POLL)

    def is_known(self, run_id: str, org: str) -> bool:
        """Whether the run needs nothing more from whoever asks to start it again: it is in
        flight here, or it has finished (an event bus asks this of a redelivered event)."""
        if run_id in self.live:
            return True
        try:
            return RunStatus(self.store.get_run(org, run_id).status).finished
        except DispatchError:
            return False

    def watch(self, callback: Watcher) -> Callable[[], None]:
        """Call `callback(run)` (a snapshot) whenever a run of this process changes status;
        returns a function that stops it. Callbacks run on the thread that changed the run,
        so they must be quick; an exception in one is logged, not raised. With a store that
        several servers share, runs of the other servers are told too (from the store's
        notifications, on a thread of the store's)."""
        stop_here = self.live.watch(callback)

        def elsewhere(runs: list[Run]) -> None:
            for run in runs:
                try:
                    callback(run)
                except Exception:
                    log.exception("a run watcher failed")

        stop_elsewhere = self.store.watch_runs(elsewhere, exclude_host=self.host)

        def stop() -> None:
            stop_here()
            stop_elsewhere()

        return stop

    # ------------------------------------------------------------------ cancelling

    def cancel_run(self, run_id: str, *, org: str, timeout: float = CANCEL_WAIT) -> Run:
        """Cancel a run of this process that has not finished; returns it, CANCELLED.

        A QUEUED run never starts. A RUNNING run is stopped by its driver (the local and
        container drivers end its worker, which is then replaced) when the run is all its
        worker was given; otherwise, as for a finished run or one queued by another process,
        a ConflictError says why it cannot be.
        """
        status, here = self.live.cancel_queued(run_id, org)
        if not here:
            status = RunStatus(self.store.get_run(org, run_id).status)  # NotFoundError when there is none
            if not status.finished and self.store.shared:
                return self._cancel_elsewhere(run_id, org, timeout)
            if not status.finished:
                raise ConflictError(f"run {run_id} is {status.value.lower()} in another process and cannot "
                                    "be cancelled here")
        if status is not None and status.finished:
            raise ConflictError(f"run {run_id} has already finished ({status.value})")
        if status == RunStatus.QUEUED:
            run = self.live.get(run_id, org)
            if run is not None:
                try:
                    self.store.finish_runs([run])
                finally:
                    self.live.remove([run])
                self.live.announce([run])
                return run
            return self.store.get_run(org, run_id)  # recorded by its batch a moment ago
        return self._cancel_running(run_id, org, timeout)

    def _cancel_elsewhere(self, run_id: str, org: str, timeout: float) -> Run:
        """Cancel a run that another server of a shared store runs: that server is asked
        through the store, and the run is read back once it has finished."""
        host = self.store.run_host(org, run_id)
        if host != self.host:
            self.store.request_cancel(host, org, run_id)
        deadline = time.monotonic() + timeout
        while True:
            run = self.store.get_run(org, run_id)
            status = RunStatus(run.status)
            if status == RunStatus.CANCELLED:
                return run
            if status.finished:
                raise ConflictError(f"run {run_id} finished ({status.value}) before it could be cancelled")
            if time.monotonic() >= deadline:
                raise ConflictError(f"run {run_id} runs on server {host}, which did not stop it within "
                                    f"{timeout:g}s (a run in a batch with others is left to finish)")
            time.sleep(STORE_POLL)

    def _cancel_running(self, run_id: str, org: str, timeout: float) -> Run:
        live = self.live.get(run_id, org)
        deployed = self.functions.deployed(org, live.function) if live is not None else None
        finished = self.live.finished_event(run_id)
        stopped = False
        try:
            # A run marked RUNNING a moment ago may not have reached its driver yet: ask again
            # for a little while before taking "no" for an answer.
            settle_by = time.monotonic() + CANCEL_REACH
            while deployed is not None and finished is not None and not finished.is_set():
                driver = deployed.driver_named(live.driver) or deployed.driver
                stopped = driver.cancel(deployed.function, run_id)
                if stopped or time.monotonic() >= settle_by:
                    break
                time.sleep(0.002)
        finally:
            if not stopped:  # else the outcome of the stopped run clears it
                self.live.stop_failed(run_id)
        if not stopped:
            run = self.get_run(run_id, org)
            if RunStatus(run.status).finished:
                raise ConflictError(f"run {run_id} finished ({RunStatus(run.status).value}) before it could "
                                    "be cancelled")
            raise ConflictError(f"run {run_id} is running together with other runs on its worker (a batch), "
                                "and stopping it would stop them: let it finish")
        if finished is not None and not finished.wait(timeout):
            raise ConflictError(f"run {run_id} was told to stop but had not within {timeout:g}s")
        run = self.get_run(run_id, org)
        if run.status != RunStatus.CANCELLED:
            raise ConflictError(f"run {run_id} finished ({RunStatus(run.status).value}) before it could be cancelled")
        return run

    # ------------------------------------------------------------------ the submit path

    def _coalescer(self, key: Key) -> Coalescer[Call]:
        coalescer = self._coalescers.get(key)
        if coalescer is None:
            with self._coalescer_lock:
                coalescer = self._coalescers.get(key)
                if coalescer is None:
                    # Kept while this process lives (a few hundred bytes a function): making
                    # one anew for each call of a function called one run at a time would cost
                    # more than the rest of the call's bookkeeping.
                    coalescer = self._coalescers[key] = Coalescer(
                        partial(self._run_batch, key), self._threads.submit, partial(self._lanes, key),
                        max_batch=MAX_BATCH, share=partial(self._worth_sharing, key), alone=_alone)
        return coalescer

    def _wait_here(self, deployed: Deployed, call: Call) -> Run:
        """Run one call and return its finished run: on this thread when a lane is free, else
        after the lane that takes it from the queue."""
        if self._closed:
            raise DispatchError("the core is closed")
        function = deployed.function
        key = (function.org, function.name)
        coalescer = self._coalescers.get(key) or self._coalescer(key)
        if coalescer.take_lane():
            try:
                self._run_here(key, deployed, call)
            finally:  # KeyboardInterrupt included: the lane is given back, or handed over
                coalescer.leave_lane()
        else:
            latch = threading.Lock()  # a one-shot latch: released when the call is done
            latch.acquire()
            call.waiter = lambda _call: latch.release()
            call.alone = True
            coalescer.add(call)
            latch.acquire()
        if call.exception is not None:
            raise call.exception
        return call.run

    def _run_here(self, key: Key, deployed: Deployed, call: Call) -> None:
        """Run one call on the calling thread, which holds a lane of its function: the warm
        path, so it skips what a batch from the queue needs (resolving, building)."""
        try:
            if self._admit(deployed, [call], claim=True):
                runs = self._dispatch(deployed, [call])
                if key not in self._run_seconds:  # see _run_batch
                    self._learn_run_seconds(key, runs)
        except BaseException as exc:
            self._abandon([call], exc)
            if not isinstance(exc, Exception):
                raise  # an interrupt reaches the caller; the run is failed, its lane given back
            if not isinstance(exc, DispatchError):
                log.exception("a run of %s failed", deployed.function.name)

    def _start(self, deployed: Deployed, calls: list[Call]) -> list[Run]:
        """Admit now and run in the background; the runs as admitted (QUEUED, or FAILED for a
        refused input), as snapshots: the live records change on other threads."""
        ready = self._admit(deployed, calls)
        admitted = [snapshot(call.run) for call in calls]
        if ready:
            function = deployed.function
            self._coalescer((function.org, function.name)).add_many(ready)
        return admitted

    def _lanes(self, key: Key) -> int:
        deployed = self.functions.deployed(*key)
        return max_workers(deployed.function) if deployed is not None else 1

    def _worth_sharing(self, key: Key) -> bool:
        """Whether runs of this function take long enough to spread a queue over its workers
        (unknown yet: yes, the safe guess for latency)."""
        seconds = self._run_seconds.get(key)
        return seconds is None or seconds >= SHARE_RUNS_ABOVE

    def _learn_run_seconds(self, key: Key, runs: list[Run]) -> None:
        total, count = 0.0, 0
        for run in runs:
            if run.started is not None and run.finished is not None:
                total += run.finished - run.started
                count += 1
        if count:
            mean = total / count
            before = self._run_seconds.get(key)
            self._run_seconds[key] = mean if before is None else 0.8 * before + 0.2 * mean

    def _run_batch(self, key: Key, calls: list[Call]) -> None:
        """One batch of a function's calls, on a lane: resolve the function once, build and
        admit what is new, run the rest, and tell every waiter whatever happens."""
        try:
            # Calls made by an entry point that resolved the function already (all but
            # submit's) need no second look at the store: asking it waits on its lock while
            # the journal applies a batch, and the worker would sit idle meanwhile.
            deployed = self.functions.deployed(*key)
            for call in calls:
                if call.run is None:  # submit's: built here, from the function as stored now
                    deployed = None
                    break
            if deployed is None:
                deployed = self.functions.resolve(*key)
            ready, fresh = [], []
            for call in calls:
                if call.run is None:
                    try:
                        call.build(deployed.function)
                    except DispatchError as exc:
                        call.exception = exc
                        call.done()
                        continue
                (ready if call.admitted else fresh).append(call)
            if fresh:
                ready += self._admit(deployed, fresh, claim=True)
            if ready:
                runs = self._dispatch(deployed, ready)
                # The estimate is read only when runs queue, so it is learned from batches; a
                # run at a time (the warm path) teaches only a function's first.
                if len(runs) > 1 or key not in self._run_seconds:
                    self._learn_run_seconds(key, runs)
        except BaseException as exc:
            self._abandon(calls, exc)
            if not isinstance(exc, DispatchError):
                raise

    def _abandon(self, calls: list[Call], exc: BaseException) -> None:
        """Calls a batch could not run: recorded ones fail as runs, the others with `exc`."""
        recorded = [call for call in calls if call.admitted and not RunStatus(call.run.status).finished]
        reason = str(exc) or type(exc).__name__  # a KeyboardInterrupt says nothing itself
        self.live.settle((call.run, failed(f"the driver could not run it: {reason}")) for call in recorded)
        try:
            if recorded:
                self._finish(recorded)
        finally:
            for call in calls:  # the caller of a waited run reads `exception` without a waiter
                if not call.admitted:
                    call.exception = exc
                call.done()

    def _admit(self, deployed: Deployed, calls: list[Call], claim: bool = False) -> list[Call]:
        """Check inputs and record the runs: QUEUED, or FAILED with an InputError (whose
        waiters are told at once); returns the calls to run. `claim`: a lane admits runs that
        it runs now, so they are RUNNING (LiveRuns.add) as soon as they are in flight."""
        validate = deployed.validate_in
        ready, rejected = calls, []
        if validate is not None:
            ready = []
            for call in calls:
                problem = validate(call.run.input)
                if problem is None:
                    ready.append(call)
                else:
                    call.run.fail(ErrorType.INPUT, problem)
                    rejected.append(call)
        runs = [call.run for call in ready]
        self.store.add_runs(runs + [call.run for call in rejected] if rejected else runs, self.host)
        for call in calls:
            call.admitted = True
        if self.live.watched:
            self.live.announce([call.run for call in calls])
        self.live.add(runs, claim=claim)
        for call in rejected:
            call.done()
        return ready

    def _dispatch(self, deployed: Deployed, calls: list[Call]) -> list[Run]:
        """Run admitted calls on the driver and record how each ended."""
        queued = [call.run for call in calls if call.run.status != RunStatus.RUNNING]
        detached = len(queued) == len(calls)  # spawned or event runs: no caller holds a thread on them
        if queued:  # admitted earlier (spawn, events): RUNNING now, unless cancelled meanwhile
            self.live.claim(queued)
            running = [call for call in calls if call.run.status == RunStatus.RUNNING]
            if len(running) < len(calls):  # cancelled while QUEUED (and recorded so): answer them now
                for call in calls:
                    if call.run.status == RunStatus.CANCELLED:
                        call.done()
                calls = running
        if not calls:
            return []
        runs = [call.run for call in calls]
        choice = deployed.choice
        if choice is None:
            self._execute(deployed, deployed.driver, "", calls, detached)
            return runs
        groups: dict[str, tuple[Any, list[Call]]] = {}
        for call in calls:  # each run its own draw: a batch is not one run's choice
            try:
                name, driver = choice.pick(call.driver)
            except DispatchError as exc:  # a pinned driver that went down since the run was asked for
                self.live.settle([(call.run, failed(str(exc)))])
                self._finish([call])
                continue
            call.run.driver = name
            groups.setdefault(name, (driver, []))[1].append(call)
        for name, (driver, group) in groups.items():
            self._execute(deployed, driver, name, group, detached)
        return runs

    def _execute(self, deployed: Deployed, driver: Any, name: str, calls: list[Call], detached: bool = False) -> None:
        """Run claimed calls on one driver (`name`, among several; else "") and record them;
        `detached` ones through the engine's queue where the driver has one (execute_queued)."""
        function = deployed.function
        runs = [call.run for call in calls]
        if self.live.watched:
            self.live.announce(runs)
        try:
            secrets = self.secrets.values_for(function) if function.secrets else {}
            context = None
            if function.convention == "dispatch":
                context = {"secrets": secrets, "timeout": function.timeout}
            json_output = self._json_output
            jobs = [
                Job(call.run.id, call.args, call.kwargs,
                    context if context is None or (call.run.event is None and call.run.http is None)
                    else {**context, "event": call.run.event, "http": call.run.http}, json_output)
                for call in calls
            ]
            hidden = [v for values in secrets.values() for v in values.values()] if secrets else []
        except Exception as exc:  # the platform failed these runs; say why, keep the rest going
            log.exception("dispatching runs of %s failed", function.name)
            self.live.settle((run, failed(f"the driver could not run it: {exc}")) for run in runs)
            self._finish(calls)
            return
        settled = 0

        def on_done(outcomes: list[Outcome]) -> None:  # as the driver learns them: answer early
            nonlocal settled
            group = calls[settled:settled + len(outcomes)]
            settled += len(group)
            try:
                live, json_output, validate_out = self.live, self._json_output, deployed.validate_out
                stopping = live.stopping
                self.live.settle([(call.run, final_state(outcome, hidden, json_output,
                                                         bool(stopping) and live.was_stopped(call.run.id),
                                                         validate_out))
                                  for call, outcome in zip(group, outcomes)])
            except Exception as exc:  # an outcome this core cannot read: the run still ends
                log.exception("settling runs of %s failed", function.name)
                self.live.settle((call.run, failed(f"its outcome could not be read: {exc}")) for call in group)
            try:
                self._finish(group)
            except Exception:  # never into the driver: it would end a worker that has more to do
                log.exception("recording runs of %s failed", function.name)

        try:
            execute = getattr(driver, "execute_queued", driver.execute) if detached else driver.execute
            outcomes = execute(function, jobs, on_done)
        except Exception as exc:
            log.exception("dispatching runs of %s failed", function.name)
            if name:  # the next runs go to the function's other drivers for a while
                deployed.choice.mark_down(name, f"its last runs failed: {exc}")
            rest = calls[settled:]
            self.live.settle((call.run, failed(f"the driver could not run it: {exc}")) for call in rest)
            self._finish(rest)
        else:
            if settled < len(calls):  # a driver that reports everything at the end
                on_done(outcomes[settled:len(calls)])
            if settled < len(calls):  # a driver that gave fewer outcomes than jobs
                rest = calls[settled:]
                settled = len(calls)
                self.live.settle((call.run, failed("the driver returned no outcome for it")) for call in rest)
                self._finish(rest)

    def _finish(self, calls: list[Call]) -> None:
        """Record finished runs, then tell their watchers and waiters."""
        runs = [call.run for call in calls]
        recorded = False
        try:
            self.store.finish_runs(runs)
            recorded = True
        finally:
            # Unrecorded, a run stays readable here (get_run, wait_run) rather than seem RUNNING.
            self.live.remove(runs, keep=not recorded)
            try:
                if self.live.watched:
                    self.live.announce(runs)
            finally:
                for call in calls:  # a waiter gets its run even if recording it failed
                    waiter = call.waiter
                    if waiter is not None:  # Call.done(), inline: once per run on the hot path
                        call.waiter = None
                        waiter(call)

    # ------------------------------------------------------------------ lifecycle

    def settle_interrupted(self, lease: HostLease) -> int:
        """Fail runs that a process which has since died left QUEUED or RUNNING."""
        return settle_interrupted(self.store, lease)

    def stop(self) -> None:
        """Take no new runs; runs not yet on a thread will not start (close() settles them)."""
        self._closed = True
        self._threads.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """After the drivers have stopped: wait for the core's threads, then fail what is left
        in flight as interrupted, and tell every waiter."""
        self.stop()
        self._threads.shutdown(wait=True)
        closing = DispatchError("the core closed before the run started")
        drained = [call for coalescer in list(self._coalescers.values()) for call in coalescer.drain()]
        leftovers = [run for run in self.live.all() if not RunStatus(run.status).finished]
        self.live.settle((run, failed("the run was interrupted: its host shut down")) for run in leftovers)
        try:
            if leftovers:
                try:
                    self.store.finish_runs(leftovers)
                finally:
                    self.live.remove(leftovers)  # their waiters are told either way
        finally:
            for call in drained:  # their lanes will never start
                if not call.admitted:
                    call.exception = closing
                call.done()


def _pinned(deployed: Deployed, driver: str | None) -> Deployed:
    """`deployed`, once a run pinned to `driver` can go there (one of the function's drivers,
    and ready); the error the caller sees otherwise, before anything is recorded."""
    if driver and deployed.choice is not None:
        deployed.choice.pick(driver)
    return deployed


def _alone(call: Call) -> bool:
    """Whether a call goes to a worker in a batch of its own (Call.alone)."""
    return call.alone


__all__ = ["MAX_BATCH", "RunManager"]
