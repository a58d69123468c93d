"""Dispatch: the core every face talks to. It manages functions, runs and secrets.

One plain object built from Settings; no module state. It owns a store, an image builder, the
drivers it has been asked for, and a thread pool that carries non-blocking runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import pickle
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, Callable

from . import plugins
from .coalesce import Coalescer
from .drivers.base import NEVER_STARTED, FaaSDriver
from .hosts import HostLease
from .images.base import Environment, ImageBuilder, Progress
from .model import (
    ConflictError,
    DeployError,
    DispatchError,
    ErrorType,
    Function,
    FunctionStatus,
    InvalidRequestError,
    NotFoundError,
    Run,
    RunFailure,
    RunStatus,
    Scaling,
    Secret,
)
from .model import BaseImage, Image
from .packaging import FunctionSource, package
from .runtime.protocol import Job, Outcome
from .secrets import SecretBox, load_key, redact
from .settings import Settings
from .store.base import EntityStore
from .units import parse_duration, parse_size

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
STORE_POLL = 0.02  # seconds between checks for functions changed by other processes
_MAX_CHUNK = 512  # runs per message to a worker in map(): amortizes I/O, bounds a retry
CANCEL_WAIT = 10.0  # seconds cancel_run() waits for a stopped run to be recorded
CANCEL_REACH = 0.1  # seconds cancel_run() keeps asking the driver about a run just started
# Runs quicker than this on average are sent to a worker all together when they queue: another
# trip to another worker costs more than running them one after another.
SHARE_RUNS_ABOVE = 0.001


class _Call:
    """A run together with the Python arguments it was made from (never stored)."""

    __slots__ = ("run", "args", "kwargs", "future")

    def __init__(self, run: Run, args: tuple, kwargs: dict[str, Any]) -> None:
        self.run = run
        self.args = args
        self.kwargs = kwargs
        self.future: Future | None = None  # submit()'s: resolved with the run once it has finished


class _Submission:
    """A run asked of submit(), before its batch resolves the function (never stored)."""

    __slots__ = ("input", "python", "future")

    def __init__(self, input: Any, python: tuple[tuple, dict[str, Any]] | None, future: Future) -> None:
        self.input = input
        self.python = python
        self.future = future


@dataclass
class _Deployed:
    """What this process holds for a function it can run now."""

    function: Function
    driver: FaaSDriver
    validate_in: Callable[[Any], str | None] | None
    validate_out: Callable[[Any], str | None] | None
    store_version: int
    checked: float = 0.0  # time.monotonic() when store_version was last compared


def _schema_validator(schema: dict[str, Any] | None, what: str) -> Callable[[Any], str | None] | None:
    if not schema:
        return None
    import jsonschema  # lazily: with jupyter-server installed it takes seconds to import

    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())

    def validate(value: Any) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        return f"{what} invalid against schema at {error.json_path}: {error.message}"

    return validate


def _max_workers(function: Function) -> int:
    """How many workers the function may have at once (at least one)."""
    return max(1, int(function.scaling.get("max_workers", 1)))


def _check_schema(schema: Any, option: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise InvalidRequestError(f"{option} must be a JSON Schema object")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(f"{option} is not a valid JSON Schema: {exc.message}") from None
    return schema


class Dispatch:
    """The core: function manager, run manager and secret store, wired from Settings."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        home = self.settings.home
        home.mkdir(parents=True, exist_ok=True)
        self.store: EntityStore = plugins.load("store", self.settings.store)(self.settings)
        self.lease = HostLease(home / "hosts")
        self.secret_box = SecretBox(load_key(home / "secret.key"))
        self.images: ImageBuilder = plugins.load("image builder", self.settings.images)(self.settings)
        self._drivers: dict[str, FaaSDriver] = {}
        self._deployed: dict[tuple[str, str], _Deployed] = {}
        self._function_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._inflight: dict[str, Run] = {}
        self._futures: dict[str, Future] = {}
        self._coalescers: dict[tuple[str, str], Coalescer[_Submission]] = {}
        self._coalescer_lock = threading.Lock()
        self._run_seconds: dict[tuple[str, str], float] = {}  # recent mean run time, per function
        self._cancelling: set[str] = set()  # RUNNING runs cancel_run() asked the driver to stop
        self._watchers: list[Callable[[Run], None]] = []
        self._executor = ThreadPoolExecutor(self.settings.run_threads, thread_name_prefix="dispatch-run")
        self._closed = False
        self.settled_on_start = self._settle_interrupted()
        self._events: Any = None  # the EventManager, started on first use (or now, below)
        if (home / "events.db").exists() or self.settings.bus != "sqlite":
            try:
                self.events  # deliveries left by a previous process go on without waiting for an emit
            except Exception:  # reported, not fatal: functions work without events
                log.exception("the event manager could not start (bus %r)", self.settings.bus)

    # ------------------------------------------------------------------ lifecycle

    def _settle_interrupted(self) -> int:
        """Fail runs that a process which has since died left QUEUED or RUNNING."""
        settled = 0
        for host in self.store.unsettled_hosts():
            if host == self.lease.id or self.lease.is_alive(host):
                continue
            settled += self.store.fail_unsettled(
                host, "the run was interrupted: the process running it ended before it finished"
            )
            self.lease.forget(host)
        if settled:
            log.warning("failed %d run(s) interrupted by a process that ended", settled)
        return settled

    def close(self) -> None:
        """Stop workers and release the store; runs still in flight fail as interrupted."""
        if self._closed:
            return
        self._closed = True
        if self._events is not None:
            self._events.close()  # stop deliveries first; undelivered events stay on the bus
        self._executor.shutdown(wait=False, cancel_futures=True)
        for driver in self._drivers.values():
            driver.close()
        self._executor.shutdown(wait=True)
        for coalescer in list(self._coalescers.values()):  # their lanes will never start
            for submission in coalescer.drain():
                submission.future.set_exception(DispatchError("the core closed before the run started"))
        leftovers = [run for run in list(self._inflight.values()) if not RunStatus(run.status).finished]
        for run in leftovers:
            run.fail(ErrorType.SYSTEM, "the run was interrupted: its host shut down")
        if leftovers:
            self.store.finish_runs(leftovers)
        self.store.close()
        self.lease.release()

    def __enter__(self) -> Dispatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _org(self, org: str | None) -> str:
        return org or self.settings.org

    def driver(self, name: str | None = None) -> FaaSDriver:
        """The driver plug-in called `name` (the default driver when None), loaded once."""
        name = name or self.settings.driver
        with self._lock:
            driver = self._drivers.get(name)
            if driver is None:
                driver = self._drivers[name] = plugins.load("driver", name)(self.settings)
            return driver

    def _function_lock(self, org: str, name: str) -> threading.Lock:
        with self._lock:
            return self._function_locks.setdefault((org, name), threading.Lock())

    # ------------------------------------------------------------------ functions

    def deploy(
        self,
        fn: Callable[..., Any] | FunctionSource,
        name: str | None = None,
        *,
        org: str | None = None,
        requirements: Iterable[str] | None = None,
        secrets: Iterable[str] | None = None,
        timeout: float | str | None = None,
        memory: int | str | None = None,
        cpu: float | None = None,
        schema_in: dict[str, Any] | str | None = None,
        schema_out: dict[str, Any] | str | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        idle_timeout: float | str | None = None,
        driver: str | None = None,
        tags: dict[str, str] | None = None,
        progress: Progress | None = None,
        expect_revision: int | None = None,
        image: str | None = None,
    ) -> Function:
        """Package `fn`, build its environment and make it runnable; returns the READY function.

        Deploying unchanged code and configuration again changes nothing. Changed code is
        UPDATING until the new revision is ready; runs after that use it. `expect_revision`
        makes it conditional: 0 creates only (ConflictError when the name is taken), N updates
        only revision N (NotFoundError when missing, ConflictError when it has moved on).
        """
        org = self._org(org)
        source = fn if isinstance(fn, FunctionSource) else package(fn, list(requirements or []))
        name = name or source.handler.rsplit(".", 1)[-1]
        if not NAME.match(name):
            raise InvalidRequestError(
                f"{name!r} is not a valid function name (letters, digits, '-', '_' and '.'; "
                "up to 63 characters; give a lambda a name=)"
            )
        secret_names = sorted(set(secrets or []))
        for secret in secret_names:
            self.store.get(Secret, org, secret)  # NotFoundError names the missing secret
        driver_name = driver or self.settings.driver
        the_driver = self.driver(driver_name)
        if image:
            self.store.get(Image, org, image)  # NotFoundError names the missing image
        scaling = Scaling()
        scaling.min_workers = scaling.min_workers if min_workers is None else int(min_workers)
        scaling.max_workers = scaling.max_workers if max_workers is None else int(max_workers)
        if idle_timeout is not None:
            scaling.idle_timeout = parse_duration(idle_timeout)
        if scaling.max_workers < 1 or not 0 <= scaling.min_workers <= scaling.max_workers:
            raise InvalidRequestError("workers must satisfy 0 <= min_workers <= max_workers, max_workers >= 1")
        resources: dict[str, Any] = {}
        if memory is not None:
            resources["memory"] = parse_size(memory)
        if cpu is not None:
            resources["cpu"] = float(cpu)
        spec = {
            "handler": source.handler,
            "convention": source.convention,
            "requirements": source.requirements,
            "schema": {k: v for k, v in (("in", _check_schema(schema_in, "schema_in")),
                                         ("out", _check_schema(schema_out, "schema_out"))) if v is not None},
            "secrets": secret_names,
            "timeout": parse_duration(timeout),
            "resources": resources,
            "driver": driver_name,
            "scaling": scaling.__dict__.copy(),
            "image_name": image or "",
        }
        digest = hashlib.sha256(
            (source.digest + json.dumps(spec, sort_keys=True)).encode()
        ).hexdigest()
        with self._function_lock(org, name):
            try:
                existing: Function | None = self.store.get(Function, org, name)
            except NotFoundError:
                existing = None
            if expect_revision is not None:
                _check_revision(existing, name, expect_revision)
            if existing is not None and existing.digest == digest and existing.status == FunctionStatus.READY:
                deployed = self._deployed.get((org, name))
                if deployed is None or not deployed.driver.is_deployed(existing):
                    self._activate(existing, progress)
                return existing
            if existing is None:
                function = Function(name=name, org=org, status=FunctionStatus.INITIALIZED)
            else:
                function = existing
            for key, value in spec.items():
                setattr(function, key, value)
            function.tags = dict(tags or function.tags or {})
            function.digest = digest
            function.source = source.encode()
            function.reason = ""
            if existing is None:
                self.store.create(function)
                function.status = FunctionStatus.CREATING
            else:
                function.status = FunctionStatus.UPDATING
            self.store.update(function)
            try:
                self._activate(function, progress, source)
            except Exception as exc:
                function.status = FunctionStatus.ERROR
                function.reason = str(exc)
                self.store.update(function)
                self._deployed.pop((org, name), None)
                raise DeployError(f"deploying {name!r} failed: {exc}", function) from exc
            function.status = FunctionStatus.READY
            self.store.update(function)
            self._deployed[(org, name)].function = function
            return function

    def _activate(self, function: Function, progress: Progress | None = None,
                  source: FunctionSource | None = None) -> _Deployed:
        """Build the environment and hand the function to its driver in this process."""
        source = source or FunctionSource.decode(function.source)
        driver = self.driver(function.driver)
        image = self.store.get(Image, function.org, function.image_name) if function.image_name else None
        if getattr(driver, "runs_images", False):
            # The driver builds the function's image itself, on function.image when given.
            environment = Environment(image.image_url if image else "", "", tuple(source.requirements))
        else:
            environment = self.images.prepare(_with_image_requirements(image, source.requirements), progress)
        function.image = environment.id
        driver.deploy(function, source, environment, progress)
        deployed = _Deployed(
            function=function,
            driver=driver,
            validate_in=_schema_validator(function.schema.get("in"), "input"),
            validate_out=_schema_validator(function.schema.get("out"), "output"),
            store_version=self.store.version(),
        )
        self._deployed[(function.org, function.name)] = deployed
        return deployed

    def _resolve(self, org: str, name: str) -> _Deployed:
        """The runnable function, re-read only when another process has written the store.

        Whether another process wrote is asked at most every STORE_POLL seconds: a redeploy
        elsewhere is seen that much later, and a warm run saves a query.
        """
        deployed = self._deployed.get((org, name))
        clock = time.monotonic()
        if deployed is not None and clock - deployed.checked < STORE_POLL:
            return deployed
        version = self.store.version()
        if deployed is not None and deployed.store_version == version:
            deployed.checked = clock
            return deployed
        with self._function_lock(org, name):
            function = self.store.get(Function, org, name)
            if function.status != FunctionStatus.READY:
                reason = f": {function.reason}" if function.reason else ""
                raise ConflictError(f"function {name!r} is not ready ({function.status}{reason})")
            deployed = self._deployed.get((org, name))
            if (deployed is None or deployed.function.digest != function.digest
                    or not deployed.driver.is_deployed(function)):
                deployed = self._activate(function)
            deployed.function = function
            deployed.store_version = version
            deployed.checked = clock
            return deployed

    def get_function(self, name: str, org: str | None = None) -> Function:
        """The function called `name`; NotFoundError when there is none."""
        return self.store.get(Function, self._org(org), name)

    def list_functions(self, org: str | None = None) -> list[Function]:
        """Every function of the organization, by name."""
        return self.store.list(Function, self._org(org))

    def delete_function(self, name: str, org: str | None = None) -> None:
        """Stop the function's workers and remove it; its run history stays."""
        org = self._org(org)
        with self._function_lock(org, name):
            function = self.store.get(Function, org, name)
            function.status = FunctionStatus.DELETING
            self.store.update(function)
            deployed = self._deployed.pop((org, name), None)
            self.driver(function.driver).undeploy(function)
            self.store.delete(Function, org, name)
            if deployed is not None:
                deployed.function.status = FunctionStatus.DELETED

    # ------------------------------------------------------------------ runs

    def call(self, name: str, args: tuple = (), kwargs: dict[str, Any] | None = None,
             org: str | None = None) -> Any:
        """Run the function with Python arguments and return its output; RunError on failure."""
        deployed = self._resolve(self._org(org), name)
        call = self._python_call(deployed, args, kwargs or {})
        self._execute(deployed, [call])
        return call.run.result()

    def spawn(self, name: str, args: tuple = (), kwargs: dict[str, Any] | None = None,
              org: str | None = None) -> Run:
        """Start a run with Python arguments without waiting; returns the QUEUED run."""
        deployed = self._resolve(self._org(org), name)
        return self._start(deployed, [self._python_call(deployed, args, kwargs or {})])[0]

    def invoke(self, name: str, input: Any = None, *, wait: bool = True, org: str | None = None,
               event: dict[str, Any] | None = None, http: dict[str, Any] | None = None,
               run_id: str | None = None) -> Run:
        """Run the function with a JSON input (the REST form) and return the run record.

        For a plain function an object maps to keyword arguments and an array to positional
        ones; `handle(ctx, payload)` receives the input as its payload.
        """
        deployed = self._resolve(self._org(org), name)
        call = self._json_call(deployed, input, event, http)
        if run_id is not None:  # an event delivery's: the same on a redelivery (events/bus/base.py)
            call.run.id = run_id
        if wait:
            self._execute(deployed, [call])
            return call.run
        return self._start(deployed, [call])[0]

    def start_event_runs(self, items: list[tuple[str, str, Any, dict[str, Any], str]]) -> list[Exception | None]:
        """Non-blocking runs for event deliveries in bulk: each item is (org, function, input,
        event, run_id), with invoke()'s JSON input mapping. Runs of one function are recorded
        together and spread over its workers in a few chunks (as map() does), which is what
        lets a bus keep up with thousands of events a second. Returns, per item, None when its
        run is recorded or the exception that kept it from being (to retry the delivery).
        """
        results: list[Exception | None] = [None] * len(items)
        groups: dict[tuple[str, str], list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault((item[0], item[1]), []).append(index)
        for (org, name), indexes in groups.items():
            try:
                deployed = self._resolve(org, name)
                function = deployed.function
                calls = []
                for index in indexes:
                    _, _, input, event, run_id = items[index]
                    call = self._json_call(deployed, input, event)
                    call.run.id = run_id
                    calls.append(call)
                workers = _max_workers(function)
                size = max(1, -(-len(calls) // workers))
                for start in range(0, len(calls), size):
                    self._start(deployed, calls[start:start + size])
            except Exception as exc:
                for index in indexes:
                    results[index] = exc
        return results

    def run(self, name: str, args: tuple = (), kwargs: dict[str, Any] | None = None, *,
            wait: bool = True, org: str | None = None) -> Run:
        """Run the function with Python arguments and return the run record (finished when
        `wait`, else QUEUED): call() and spawn() for callers that want the record, not the output.
        """
        deployed = self._resolve(self._org(org), name)
        call = self._python_call(deployed, tuple(args), kwargs or {})
        if wait:
            self._execute(deployed, [call])
            return call.run
        return self._start(deployed, [call])[0]

    def submit(self, name: str, input: Any = None, *, org: str | None = None,
               python: tuple[tuple, dict[str, Any]] | None = None) -> Future:
        """Start a run and return at once a Future of its finished record, resolved on a core
        thread: nothing here blocks, so an event loop may call it.

        The input is JSON as for invoke(), or `python=(args, kwargs)` for a Python call. Runs
        submitted while all of the function's workers are busy go to the next free one
        together, in one message (coalesce.py): how a server waits on many runs at once
        without a thread and a store write per run. A run waiting for its batch is recorded
        when the batch starts. The Future fails with the DispatchError of an unknown or
        unready function; a run that fails is a FAILED run, as with invoke().
        """
        if self._closed:
            raise DispatchError("the core is closed")
        key = (self._org(org), name)
        future: Future = Future()
        coalescer = self._coalescers.get(key)
        if coalescer is None:
            with self._coalescer_lock:  # never self._lock: it is held while plug-ins start
                coalescer = self._coalescers.get(key)
                if coalescer is None:
                    coalescer = self._coalescers[key] = Coalescer(
                        partial(self._run_submitted, key), self._executor.submit,
                        partial(self._lanes, key), on_idle=partial(self._forget_coalescer, key),
                        share=partial(self._worth_sharing, key))
        coalescer.add(_Submission(input, python, future))
        return future

    def _lanes(self, key: tuple[str, str]) -> int:
        deployed = self._deployed.get(key)
        return _max_workers(deployed.function) if deployed is not None else 1

    def _worth_sharing(self, key: tuple[str, str]) -> bool:
        """Whether runs of this function take long enough to spread a queue over its workers
        (unknown yet: yes, the safe guess for latency)."""
        seconds = self._run_seconds.get(key)
        return seconds is None or seconds >= SHARE_RUNS_ABOVE

    def _learn_run_seconds(self, key: tuple[str, str], runs: list[Run]) -> None:
        took = [run.finished - run.started for run in runs if run.started is not None and run.finished is not None]
        if took:
            mean = sum(took) / len(took)
            before = self._run_seconds.get(key)
            self._run_seconds[key] = mean if before is None else 0.8 * before + 0.2 * mean

    def _forget_coalescer(self, key: tuple[str, str], coalescer: Coalescer) -> None:
        with self._coalescer_lock:
            if self._coalescers.get(key) is coalescer and coalescer.idle:
                del self._coalescers[key]

    def _run_submitted(self, key: tuple[str, str], submissions: list[_Submission]) -> None:
        """One batch of submit()'s runs: resolve the function once, record and run them all,
        and resolve every Future whatever happens."""
        calls: list[_Call] = []
        try:
            deployed = self._resolve(*key)
            for submission in submissions:
                try:
                    if submission.python is None:
                        call = self._json_call(deployed, submission.input)
                    else:
                        args, kwargs = submission.python
                        call = self._python_call(deployed, tuple(args), dict(kwargs))
                except DispatchError as exc:
                    submission.future.set_exception(exc)
                    continue
                call.future = submission.future
                calls.append(call)
            ready = self._admit(deployed, calls)
            for call in calls:  # refused inputs: answered now, not after the batch
                if call.run.status == RunStatus.FAILED:
                    call.future.set_result(call.run)
            if ready:
                self._learn_run_seconds(key, self._dispatch(deployed, ready))
        except BaseException as exc:
            for submission in submissions:
                if not submission.future.done():
                    submission.future.set_exception(exc)
            if not isinstance(exc, DispatchError):
                raise
            return
        for call in calls:  # anything the paths above left unanswered
            if not call.future.done():
                call.future.set_result(call.run)

    def map(self, name: str, items: Iterable[Any], org: str | None = None,
            return_exceptions: bool = False) -> Iterator[Any]:
        """Outputs of one run per item, in order, fanned out over the function's workers.

        A tuple item is the positional arguments; any other item is the single argument (the
        payload, for handle(ctx, payload)). A failed run raises its RunError when reached,
        unless `return_exceptions`, which yields it instead.
        """
        deployed = self._resolve(self._org(org), name)
        dispatch_style = deployed.function.convention == "dispatch"

        def make(item: Any) -> _Call:
            args = item if isinstance(item, tuple) and not dispatch_style else (item,)
            return self._python_call(deployed, args, {})

        def outputs() -> Iterator[Any]:
            window: deque[tuple[Future | None, list[_Call]]] = deque()
            limit = 2 * _max_workers(deployed.function)
            iterator, size = iter(items), 8
            while True:
                while len(window) < limit:
                    calls = [make(item) for item in islice(iterator, size)]
                    if not calls:
                        break
                    ready = self._admit(deployed, calls)
                    future = self._executor.submit(self._dispatch, deployed, ready) if ready else None
                    window.append((future, calls))
                    size = min(size * 2, _MAX_CHUNK)
                if not window:
                    return
                future, calls = window.popleft()
                if future is not None:
                    future.result()
                for call in calls:
                    yield call.run.result(return_exceptions)

        return outputs()

    def _new_run(self, function: Function, input: Any, event: dict[str, Any] | None = None,
                 http: dict[str, Any] | None = None) -> Run:
        return Run(function=function.name, org=function.org, function_revision=function.revision,
                   input=input, event=event, http=http)

    def _json_call(self, deployed: _Deployed, input: Any, event: dict[str, Any] | None = None,
                   http: dict[str, Any] | None = None) -> _Call:
        """A call from a JSON input: an object is keyword arguments, an array positional ones,
        anything else the one argument (always the payload of handle(ctx, payload))."""
        function = deployed.function
        if function.convention == "dispatch":
            args, kwargs = (input,), {}
        elif isinstance(input, dict):
            args, kwargs = (), input
        elif isinstance(input, list):
            args, kwargs = tuple(input), {}
        elif input is None:
            args, kwargs = (), {}
        else:
            args, kwargs = (input,), {}
        return _Call(self._new_run(function, input, event, http), args, kwargs)

    def _python_call(self, deployed: _Deployed, args: tuple, kwargs: dict[str, Any]) -> _Call:
        function = deployed.function
        if function.convention == "dispatch":
            if len(args) != 1 or kwargs:
                raise InvalidRequestError(
                    f"{function.name} is a handle(ctx, payload) function: call it with one payload"
                )
            shown: Any = args[0]
        elif kwargs and args:
            shown = {"args": list(args), "kwargs": kwargs}
        elif kwargs:
            shown = kwargs
        else:
            shown = list(args)
        return _Call(self._new_run(function, shown), tuple(args), kwargs)

    def _admit(self, deployed: _Deployed, calls: list[_Call]) -> list[_Call]:
        """Validate inputs and record the runs: QUEUED, or FAILED with an InputError."""
        validate = deployed.validate_in
        ready, rejected = calls, []
        if validate is not None:
            ready = []
            for call in calls:
                problem = validate(call.run.input)
                if problem is None:
                    ready.append(call)
                else:
                    rejected.append(call.run.fail(ErrorType.INPUT, problem))
        for call in ready:
            self._inflight[call.run.id] = call.run
        self.store.add_runs([call.run for call in ready] + rejected, self.lease.id)
        if self._watchers:
            self._announce([call.run for call in calls])
        return ready

    def _start(self, deployed: _Deployed, calls: list[_Call]) -> list[Run]:
        """Admit and dispatch in the background; returns the runs as admitted (QUEUED, or
        FAILED for a refused input): copies, since the live records change on other threads."""
        ready = self._admit(deployed, calls)
        admitted = [copy.copy(call.run) for call in calls]
        if ready:
            future = self._executor.submit(self._dispatch, deployed, ready)
            for call in ready:
                run_id = call.run.id
                self._futures[run_id] = future
            future.add_done_callback(lambda _f, ids=[c.run.id for c in ready]: self._forget_futures(ids))
        return admitted

    def _forget_futures(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            self._futures.pop(run_id, None)

    def _execute(self, deployed: _Deployed, calls: list[_Call]) -> None:
        ready = self._admit(deployed, calls)
        if ready:
            self._dispatch(deployed, ready)

    def _dispatch(self, deployed: _Deployed, calls: list[_Call]) -> list[Run]:
        """Run admitted calls on the driver and record how each ended."""
        claimed = self._claim(calls)
        if len(claimed) < len(calls):  # cancelled while QUEUED: answer their waiters now
            for call in calls:
                if call.future is not None and call.run.status == RunStatus.CANCELLED and not call.future.done():
                    call.future.set_result(call.run)
        calls = claimed
        if not calls:
            return []
        function = deployed.function
        runs = [call.run for call in calls]
        try:
            secrets = self._secret_values(function)
            context = None
            if function.convention == "dispatch":
                context = {"secrets": secrets, "timeout": function.timeout}
            jobs = [
                Job(call.run.id, call.args, call.kwargs,
                    context if context is None or (call.run.event is None and call.run.http is None)
                    else {**context, "event": call.run.event, "http": call.run.http})
                for call in calls
            ]
            for run in runs:
                run.status = RunStatus.RUNNING
            if self._watchers:
                self._announce(runs)
            hidden = [v for values in secrets.values() for v in values.values()] if secrets else []
        except Exception as exc:  # the platform failed these runs; say why, keep the rest going
            log.exception("dispatching runs of %s failed", function.name)
            for run in runs:
                run.fail(ErrorType.SYSTEM, f"the driver could not run it: {exc}")
            self._finish(calls)
            return runs
        settled = 0

        def on_done(outcomes: list[Outcome]) -> None:  # as the driver learns them: answer early
            nonlocal settled
            group = calls[settled:settled + len(outcomes)]
            settled += len(group)
            try:
                for call, outcome in zip(group, outcomes):
                    self._settle(deployed, call.run, outcome, hidden)
                self._finish(group)
            except Exception:  # never into the driver: it would end a worker that has more to do
                log.exception("recording runs of %s failed", function.name)

        try:
            outcomes = deployed.driver.execute(function, jobs, on_done)
        except Exception as exc:
            log.exception("dispatching runs of %s failed", function.name)
            rest = calls[settled:]
            for call in rest:
                call.run.fail(ErrorType.SYSTEM, f"the driver could not run it: {exc}")
            self._finish(rest)
        else:
            if settled < len(calls):  # a driver that reports everything at the end
                on_done(outcomes[settled:])
        return runs

    def _finish(self, calls: list[_Call]) -> None:
        """Record finished runs, then tell their watchers and waiters."""
        runs = [call.run for call in calls]
        try:
            self.store.finish_runs(runs)
        finally:
            for run in runs:
                self._inflight.pop(run.id, None)
            try:
                if self._watchers:
                    self._announce(runs)
            finally:
                for call in calls:  # a waiter gets its run even if recording it failed
                    if call.future is not None and not call.future.done():
                        call.future.set_result(call.run)

    def _claim(self, calls: list[_Call]) -> list[_Call]:
        """Mark admitted calls RUNNING, leaving out those cancelled while they were QUEUED."""
        with self._lock:
            claimed = [call for call in calls if call.run.status != RunStatus.CANCELLED]
            for call in claimed:
                call.run.status = RunStatus.RUNNING
        return claimed

    def cancel_run(self, run_id: str, org: str | None = None, timeout: float = CANCEL_WAIT) -> Run:
        """Cancel a run of this process that has not finished; returns it, CANCELLED.

        A QUEUED run never starts. A RUNNING run is stopped by its driver (the local and
        container drivers end its worker, which is then replaced) when the run is all its
        worker was given; otherwise, as for a finished run or one queued by another process,
        a ConflictError says why it cannot be.
        """
        run = self.get_run(run_id, org)
        with self._lock:
            live = self._inflight.get(run_id)
            mine = live is not None and live.org == run.org
            status = RunStatus(live.status) if mine else RunStatus(run.status)
            if mine and status == RunStatus.QUEUED:
                live.status = RunStatus.CANCELLED
                live.error = RunFailure(ErrorType.SYSTEM.value, "the run was cancelled before it started")
                live.finished = time.time()
            elif mine and status == RunStatus.RUNNING:
                self._cancelling.add(run_id)
        if status.finished:
            raise ConflictError(f"run {run_id} has already finished ({status.value})")
        if not mine:
            raise ConflictError(f"run {run_id} is {status.value.lower()} in another process and cannot be cancelled here")
        if status == RunStatus.QUEUED:
            try:
                self.store.finish_runs([live])
            finally:
                self._inflight.pop(run_id, None)
            if self._watchers:
                self._announce([live])
            return live
        return self._cancel_running(live, timeout)

    def _cancel_running(self, run: Run, timeout: float) -> Run:
        deployed = self._deployed.get((run.org, run.function))
        stopped = False
        try:
            # A run marked RUNNING a moment ago may not have reached its driver yet: ask again
            # for a little while before taking "no" for an answer.
            settle_by = time.monotonic() + CANCEL_REACH
            while deployed is not None and not RunStatus(run.status).finished:
                stopped = deployed.driver.cancel(deployed.function, run.id)
                if stopped or time.monotonic() >= settle_by:
                    break
                time.sleep(0.002)
        finally:
            if not stopped:  # else _settle forgets it when the run ends
                with self._lock:
                    self._cancelling.discard(run.id)
        if not stopped and RunStatus(run.status).finished:
            raise ConflictError(f"run {run.id} finished ({RunStatus(run.status).value}) before it could be cancelled")
        if not stopped:
            raise ConflictError(f"run {run.id} is running together with other runs on its worker (a batch), "
                                "and stopping it would stop them: let it finish")
        deadline = time.monotonic() + timeout
        while not RunStatus(run.status).finished and time.monotonic() < deadline:
            time.sleep(0.005)
        if run.status != RunStatus.CANCELLED:
            if RunStatus(run.status).finished:
                raise ConflictError(f"run {run.id} finished ({RunStatus(run.status).value}) before it could be cancelled")
            raise ConflictError(f"run {run.id} was told to stop but had not within {timeout:g}s")
        return run

    def watch(self, callback: Callable[[Run], None]) -> Callable[[], None]:
        """Call `callback(run)` whenever a run of this process changes status; returns a
        function that stops it. Callbacks run on the thread that changed the run, so they
        must be quick (widgets queue and throttle); an exception in one is logged, not raised.
        """
        with self._lock:
            self._watchers = [*self._watchers, callback]

        def stop() -> None:
            with self._lock:
                self._watchers = [w for w in self._watchers if w is not callback]

        return stop

    def _announce(self, runs: list[Run]) -> None:
        for watcher in self._watchers:
            for run in runs:
                try:
                    watcher(run)
                except Exception:
                    log.exception("a run watcher failed")

    def _settle(self, deployed: _Deployed, run: Run, outcome: Outcome, hidden: list[str]) -> None:
        run.started, run.finished, run.cold_start = outcome.started, outcome.finished, outcome.cold_start
        if run.id in self._cancelling:
            with self._lock:
                self._cancelling.discard(run.id)
            cancelled = outcome.error is not None and outcome.error.type == ErrorType.SYSTEM.value
        else:
            cancelled = False
        if cancelled:  # the driver's doing (a stopped worker), not the function's
            run.logs = {"stdout": redact(outcome.stdout, hidden), "stderr": redact(outcome.stderr, hidden)}
            message = (NEVER_STARTED if outcome.error.message == NEVER_STARTED
                       else "the run was cancelled while it ran: its worker was stopped")
            run.error = RunFailure(ErrorType.SYSTEM.value, message)
            run.status = RunStatus.CANCELLED
            return
        stdout, stderr = outcome.stdout, outcome.stderr
        if hidden:
            stdout, stderr = redact(stdout, hidden), redact(stderr, hidden)
        run.logs = {"stdout": stdout, "stderr": stderr}
        if outcome.error is not None:
            failure = outcome.error
            run.error = RunFailure(failure.type, redact(failure.message, hidden),
                                   redact(failure.stacktrace, hidden))
            run.status = RunStatus.FAILED
            return
        try:
            value = pickle.loads(outcome.output)
        except Exception as exc:
            run.error = RunFailure(ErrorType.FUNCTION.value,
                                   f"the output could not be loaded by the caller: {exc}")
            run.status = RunStatus.FAILED
            return
        problem = deployed.validate_out(value) if deployed.validate_out else None
        if problem is not None:
            run.error = RunFailure(ErrorType.FUNCTION.value, problem)
            run.status = RunStatus.FAILED
            return
        run.output = value
        run.status = RunStatus.SUCCEEDED

    def _secret_values(self, function: Function) -> dict[str, dict[str, str]]:
        values = {}
        for name in function.secrets:
            try:
                secret = self.store.get(Secret, function.org, name)
            except NotFoundError:
                raise DispatchError(f"secret {name!r} used by {function.name!r} no longer exists") from None
            values[name] = self.secret_box.open(secret).values
        return values

    def wait_run(self, run_id: str, timeout: float | None = None, org: str | None = None) -> Run:
        """The run once it has finished; TimeoutError if it has not within `timeout` seconds."""
        future = self._futures.get(run_id)
        if future is not None:
            try:
                runs = future.result(timeout)
            except TimeoutError:
                raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s") from None
            for run in runs:
                if run.id == run_id:
                    return run
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(run_id, org)
            if RunStatus(run.status).finished:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s")
            time.sleep(0.02)

    def get_run(self, run_id: str, org: str | None = None) -> Run:
        """The run with that id (live state while it is in flight here)."""
        live = self._inflight.get(run_id)
        if live is not None and live.org == self._org(org):
            return live
        return self.store.get_run(self._org(org), run_id)

    def list_runs(self, org: str | None = None, *, function: str | None = None,
                  status: str | None = None, since: float | None = None,
                  before: str | None = None, limit: int = 100) -> list[Run]:
        """Runs newest first, with this process's live state for runs in flight."""
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        if status is not None:
            try:
                status = RunStatus(status.upper()).value
            except ValueError:
                raise InvalidRequestError(
                    f"unknown run status {status!r} (one of {', '.join(s.value for s in RunStatus)})"
                ) from None
        runs = self.store.list_runs(self._org(org), function=function, status=status, since=since,
                                    before=before, limit=limit)
        return [self._inflight.get(run.id, run) for run in runs]

    # ------------------------------------------------------------------ images

    def _oci_builder(self):
        """The OCI image builder (needs Settings.registry), made once."""
        with self._lock:
            builder = getattr(self, "_oci", None)
            if builder is None:
                from .images.oci import OciBuilder

                builder = self._oci = OciBuilder(self.settings)
            return builder

    def create_base_image(self, name: str, image_url: str, *, language: str = "python3",
                          org: str | None = None, tags: dict[str, str] | None = None) -> BaseImage:
        """Register an image in a registry as a base for images; READY once its manifest is read
        (ERROR with the reason when it cannot be)."""
        from .images.oci import PYTHON_LABEL
        from .images.registry import Reference

        if not NAME.match(name):
            raise InvalidRequestError(f"{name!r} is not a valid base image name")
        if language not in ("python3", "python"):
            raise InvalidRequestError(f"language {language!r} is not supported (python3)")
        try:
            reference = Reference.parse(image_url)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        base = BaseImage(name=name, org=self._org(org), image_url=image_url, language="python3",
                         tags=dict(tags or {}), status=FunctionStatus.INITIALIZED.value)
        self.store.create(base)
        try:
            builder = self._oci_builder()
            client = builder.assembler.client(reference.registry)
            base.digest = client.manifest_digest(reference.repository, reference.ref) or ""
            if not base.digest:
                raise NotFoundError(f"{image_url} is not in its registry")
            base.python = builder.labels(reference).get(PYTHON_LABEL, "")
            base.status = FunctionStatus.READY.value
        except Exception as exc:
            base.status, base.reason = FunctionStatus.ERROR.value, str(exc)
        return self.store.update(base)

    def get_base_image(self, name: str, org: str | None = None) -> BaseImage:
        """The base image called `name`."""
        return self.store.get(BaseImage, self._org(org), name)

    def list_base_images(self, org: str | None = None) -> list[BaseImage]:
        """Every base image of the organization, by name."""
        return self.store.list(BaseImage, self._org(org))

    def delete_base_image(self, name: str, org: str | None = None) -> None:
        """Forget a base image (what is in the registry stays)."""
        self.store.delete(BaseImage, self._org(org), name)

    def create_image(self, name: str, base: str, *, requirements: Iterable[str] | None = None,
                     system_packages: Iterable[str] | None = None, org: str | None = None,
                     tags: dict[str, str] | None = None, progress: Progress | None = None) -> Image:
        """Build an image on a base image: its system packages and requirements as layers of
        their own, pushed to the registry; functions deployed with `image=name` are built on it.
        The build streams its log to `progress`; a failed build leaves the image in ERROR."""
        from packaging.requirements import InvalidRequirement, Requirement

        from .images.oci import repository_name

        org = self._org(org)
        if not NAME.match(name):
            raise InvalidRequestError(f"{name!r} is not a valid image name")
        base_image = self.store.get(BaseImage, org, base)
        if base_image.status != FunctionStatus.READY.value:
            raise ConflictError(f"base image {base!r} is not ready ({base_image.status}: {base_image.reason})")
        wanted = sorted({r.strip() for r in requirements or [] if r.strip()})
        for text in wanted:
            try:
                Requirement(text)
            except InvalidRequirement:
                raise InvalidRequestError(f"not a valid requirement: {text!r}") from None
        packages = sorted({p.strip() for p in system_packages or [] if p.strip()})
        for package_name in packages:
            if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", package_name):
                raise InvalidRequestError(f"not a valid Debian package name: {package_name!r}")
        try:
            image = self.store.get(Image, org, name)
        except NotFoundError:
            image = self.store.create(Image(name=name, org=org, status=FunctionStatus.CREATING.value))
        else:  # a failed build may be retried under its name; anything else is taken
            if image.status != FunctionStatus.ERROR.value:
                raise ConflictError(f"an image named {name!r} already exists ({image.status})")
        image.base_image, image.requirements, image.system_packages = base, wanted, packages
        image.tags, image.status, image.reason = dict(tags or {}), FunctionStatus.CREATING.value, ""
        image = self.store.update(image)
        try:
            built = self._oci_builder().build_environment(
                repository_name("dispatch", "images", org, name), base_image.image_url, wanted, packages,
                progress)
        except Exception as exc:
            image.status, image.reason = FunctionStatus.ERROR.value, str(exc)
            self.store.update(image)
            raise DeployError(f"building image {name!r} failed: {exc}") from exc
        image.image_url, image.digest = built.reference, built.digest
        image.status = FunctionStatus.READY.value
        return self.store.update(image)

    def get_image(self, name: str, org: str | None = None) -> Image:
        """The image called `name`."""
        return self.store.get(Image, self._org(org), name)

    def list_images(self, org: str | None = None) -> list[Image]:
        """Every image of the organization, by name."""
        return self.store.list(Image, self._org(org))

    def delete_image(self, name: str, org: str | None = None) -> None:
        """Forget an image (what is in the registry stays; functions built on it keep running)."""
        self.store.delete(Image, self._org(org), name)

    # ------------------------------------------------------------------ secrets

    def create_secret(self, name: str, values: dict[str, str], org: str | None = None,
                      tags: dict[str, str] | None = None) -> Secret:
        """Store a new secret, encrypted; a taken name is a ConflictError."""
        if not NAME.match(name):
            raise InvalidRequestError(f"{name!r} is not a valid secret name")
        secret = self.secret_box.seal(Secret(name=name, org=self._org(org), tags=dict(tags or {})), values)
        return self.store.create(secret)

    def get_secret(self, name: str, org: str | None = None) -> Secret:
        """The secret with its values decrypted."""
        return self.secret_box.open(self.store.get(Secret, self._org(org), name))

    def list_secrets(self, org: str | None = None) -> list[Secret]:
        """Every secret's name and key names; never the values."""
        return self.store.list(Secret, self._org(org))

    def delete_secret(self, name: str, org: str | None = None) -> None:
        """Remove the secret; functions that use it fail their next runs with a clear error."""
        self.store.delete(Secret, self._org(org), name)


    # ------------------------------------------------------------------ events

    @property
    def events(self) -> Any:
        """The event manager (dispatch_kernel.events.manager.EventManager), started on first use."""
        if self._events is None:
            with self._lock:
                if self._events is None:
                    from .events.manager import EventManager

                    self._events = EventManager(self)
        return self._events

    def emit(self, type: str | dict[str, Any], data: Any = None, *, source: str = "dispatch",
             id: str | None = None, subject: str | None = None,
             extensions: dict[str, Any] | None = None, org: str | None = None) -> dict[str, Any]:
        """Publish a CloudEvent 1.0 (built from the arguments, or given whole as a dict); each
        matching subscription gets a non-blocking run whose input is `data`. Returns the event."""
        from .events.cloudevent import make_event

        event = type if isinstance(type, dict) else make_event(
            type, data, source=source, id=id, subject=subject, extensions=extensions)
        return self.events.emit(event, self._org(org))

    def subscribe(self, function: str, event_type: str, *, name: str | None = None,
                  filters: dict[str, str] | None = None, max_attempts: int = 5,
                  org: str | None = None, tags: dict[str, str] | None = None) -> Any:
        """Run `function` for every event whose type matches `event_type` (exact, `prefix.*` or
        `*`) and whose attributes equal `filters`; returns the Subscription."""
        if not NAME.match(function):
            raise InvalidRequestError(f"{function!r} is not a valid function name")
        if name is not None and not NAME.match(name):
            raise InvalidRequestError(f"{name!r} is not a valid subscription name")
        return self.events.subscribe(function, event_type, self._org(org), name=name, filters=filters,
                                     max_attempts=max_attempts, tags=tags)

    def list_subscriptions(self, org: str | None = None) -> list[Any]:
        return self.events.list_subscriptions(self._org(org))

    def get_subscription(self, name: str, org: str | None = None) -> Any:
        return self.events.get_subscription(name, self._org(org))

    def delete_subscription(self, name: str, org: str | None = None) -> None:
        self.events.delete_subscription(name, self._org(org))

    def dead_letters(self, subscription: str | None = None, org: str | None = None) -> list[dict[str, Any]]:
        """Events given up after their subscription's max_attempts: {subscription, event, attempts, error}."""
        return self.events.dead_letters(self._org(org), subscription)

    def create_event_source(self, name: str, type: str, *, config: dict[str, Any] | None = None,
                            secrets: list[str] | None = None, org: str | None = None,
                            tags: dict[str, str] | None = None) -> Any:
        """Create and start an event source (schedule, webhook, vcenter, or a plug-in's)."""
        if not NAME.match(name):
            raise InvalidRequestError(f"{name!r} is not a valid event source name")
        return self.events.create_event_source(name, type, self._org(org), config=config,
                                               secrets=secrets, tags=tags)

    def list_event_sources(self, org: str | None = None) -> list[Any]:
        return self.events.list_event_sources(self._org(org))

    def get_event_source(self, name: str, org: str | None = None) -> Any:
        return self.events.get_event_source(name, self._org(org))

    def delete_event_source(self, name: str, org: str | None = None) -> None:
        """Stop the source and remove it."""
        self.events.delete_event_source(name, self._org(org))

    def receive(self, source_name: str, headers: dict[str, str], body: bytes,
                org: str | None = None, authenticated: bool = False) -> dict[str, Any]:
        """A request to webhook source `source_name`: authenticated by its token (unless the
        caller was authenticated otherwise), turned into a CloudEvent (structured, binary, or
        plain JSON) and emitted. Returns the event."""
        return self.events.receive(source_name, self._org(org), headers, body, authenticated)


def _check_revision(existing: Function | None, name: str, expected: int) -> None:
    """Refuse a conditional deploy whose expected revision is not the stored one."""
    current = existing.revision if existing is not None else 0
    if current == expected:
        return
    if existing is None:
        raise NotFoundError(f"no function named {name!r}")
    if expected == 0:
        raise ConflictError(f"a function named {name!r} already exists (revision {current})")
    raise ConflictError(
        f"function {name!r} has changed (revision {current}, the update was based on {expected}); "
        "fetch it again and retry"
    )


def _with_image_requirements(image: Image | None, requirements: list[str]) -> list[str]:
    """An image's requirements plus the function's own; the image's pin wins for a name in both."""
    if image is None:
        return list(requirements)
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    taken = {canonicalize_name(Requirement(r).name) for r in image.requirements}
    return [*image.requirements, *(r for r in requirements if canonicalize_name(Requirement(r).name) not in taken)]

