"""FunctionManager: Dispatch's function manager. Deploy (package, build, hand to a driver),
activate a stored function in this process, resolve a name to something runnable, and the
function records with their revisions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from . import plugins
from .drivers.base import Artifact, FaaSDriver, Runs
from .images.base import Progress
from .images.manager import ImageManager
from .inputs import json_or_file
from .model import ConflictError, DeployError, Function, FunctionStatus, Image, InvalidRequestError, NotFoundError
from .model import Scaling, check_name
from .packaging import FunctionSource, package
from .runtime.forkserver import ForkServerProcess
from .secrets import SecretManager
from .settings import Settings
from .store.base import EntityStore
from .units import parse_duration, parse_size

if TYPE_CHECKING:
    from .drivers.choice import DriverChoice

log = logging.getLogger(__name__)

STORE_POLL = 0.02  # seconds between checks for functions changed by other processes
DELETIONS_POLL = 1.0  # seconds between looks for functions another process deleted

Validator = Callable[[Any], "str | None"]


@dataclass
class Deployed:
    """What this process holds for a function it can run now."""

    function: Function
    driver: FaaSDriver
    validate_in: Validator | None
    validate_out: Validator | None
    store_version: int
    checked: float = 0.0  # time.monotonic() when store_version was last compared
    choice: DriverChoice | None = None  # with several drivers: which one runs each run

    def is_live(self, function: Function) -> bool:
        """True when every driver that deployed `function` can still run this revision."""
        if self.choice is None:
            return self.driver.is_deployed(function)
        return all(entry.driver.is_deployed(function) for entry in self.choice.ready())

    def driver_named(self, name: str) -> FaaSDriver | None:
        """The function's driver called `name` (the run's), if it has one."""
        if self.choice is None:
            return self.driver if name in ("", self.function.driver) else None
        return self.choice.driver(name)


def max_workers(function: Function) -> int:
    """How many workers the function may have at once (at least one)."""
    return max(1, int(function.scaling.get("max_workers", 1)))


def prestart(settings: Settings, drivers: plugins.Loaded[FaaSDriver],
             started: ForkServerProcess | None = None) -> None:
    """Have the default driver get ready for functions that need nothing beyond this
    interpreter (the local driver starts its fork server, or adopts `started`, one connect()
    started ahead), so that a notebook's first cell finds it up. The core runs this on a
    thread of its own while it starts; a failure only means the first deploy does the work
    (and says why if it fails again)."""
    try:
        driver = drivers.get(settings.driver)
        if driver.runs == Runs.ENVIRONMENT:
            builder = plugins.load("image builder", settings.images)(settings)
            driver.prestart(builder.prepare([]), started)
            started = None  # the driver's now, adopted or closed
    except Exception as exc:
        log.debug("prestarting the %s driver failed: %s", settings.driver, exc)
    finally:
        if started is not None:
            started.close()


class FunctionManager:
    """Functions of every organization, and the ones this process can run now."""

    def __init__(self, settings: Settings, store: EntityStore, images: ImageManager,
                 drivers: plugins.Loaded[FaaSDriver], secrets: SecretManager) -> None:
        self.settings = settings
        self.store = store
        self.images = images
        self.drivers = drivers
        self.secrets = secrets
        self._deployed: dict[tuple[str, str], Deployed] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None  # started with the first function here

    # ------------------------------------------------------------------ deploy

    def deploy(self, fn: Callable[..., Any] | FunctionSource, name: str | None = None, *, org: str,
               requirements: Iterable[str] | None = None, secrets: Iterable[str] | None = None,
               timeout: float | str | None = None, memory: int | str | None = None, cpu: float | None = None,
               schema_in: dict[str, Any] | str | None = None, schema_out: dict[str, Any] | str | None = None,
               min_workers: int | None = None, max_workers: int | None = None,
               idle_timeout: float | str | None = None, driver: str | None = None,
               drivers: dict[str, float] | list[str] | str | None = None,
               tags: dict[str, str] | None = None, progress: Progress | None = None,
               expect_revision: int | None = None, image: str | None = None) -> Function:
        """Package `fn`, build what it runs in and make it runnable; returns the READY function.

        Deploying unchanged code and configuration again changes nothing. Changed code is
        UPDATING until the new revision is ready; runs after that use it. `expect_revision`
        makes it conditional: 0 creates only (ConflictError when the name is taken), N updates
        only revision N (NotFoundError when missing, ConflictError when it has moved on).

        `drivers` runs it on several drivers (drivers/choice.py): {name: weight} splits the
        runs, [name, ...] fails over in order. A driver whose deploy fails leaves the others
        serving; its reason is in the function's `driver_status`.
        """
        source = fn if isinstance(fn, FunctionSource) else package(fn, list(requirements or []))
        name = check_name("function", name or source.handler.rsplit(".", 1)[-1])
        secret_names = sorted(set(secrets or []))
        self.secrets.require(secret_names, org)  # NotFoundError names the missing secret
        driver_names, drivers_spec = _driver_names(driver, drivers, self.settings.driver)
        if len(driver_names) == 1:  # an unknown driver is refused before anything is stored
            self.drivers.get(driver_names[0])
        else:  # of several, one that cannot start is a failed deploy of that one only
            for driver_name in driver_names:
                plugins.load("driver", driver_name)
        driver_name = driver_names[0]
        if image:
            self.store.get(Image, org, image)  # NotFoundError names the missing image
        spec = {
            "handler": source.handler,
            "convention": source.convention,
            "requirements": source.requirements,
            "schema": {k: v for k, v in (("in", _check_schema(schema_in, "schema_in")),
                                         ("out", _check_schema(schema_out, "schema_out"))) if v is not None},
            "secrets": secret_names,
            "timeout": parse_duration(timeout),
            "resources": _resources(memory, cpu),
            "driver": driver_name,
            "drivers": drivers_spec,
            "scaling": _scaling(min_workers, max_workers, idle_timeout),
            "image_name": image or "",
        }
        # Without several drivers the digest is what it was before `drivers` existed: functions
        # deployed then are not redeployed for it.
        hashed = spec if drivers_spec else {k: v for k, v in spec.items() if k != "drivers"}
        digest = hashlib.sha256((source.digest + json.dumps(hashed, sort_keys=True)).encode()).hexdigest()
        with self._function_lock(org, name):
            try:
                existing: Function | None = self.store.get(Function, org, name)
            except NotFoundError:
                existing = None
            if expect_revision is not None:
                _check_revision(existing, name, expect_revision)
            if existing is not None and existing.digest == digest and existing.status == FunctionStatus.READY:
                deployed = self._deployed.get((org, name))
                if deployed is None or not deployed.is_live(existing):
                    self._activate(existing, progress)
                return existing
            dropped = set(driver_names_of(existing)) - set(driver_names) if existing is not None else set()
            function = existing or Function(name=name, org=org, status=FunctionStatus.INITIALIZED)
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
            function.touch()
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
            for old in sorted(dropped):  # a driver no longer used removes what it made
                try:
                    self.drivers.get(old).undeploy(function)
                except Exception as exc:  # reported, not fatal: the function runs elsewhere now
                    log.warning("removing %s from driver %s: %s", name, old, exc)
            return function

    def _activate(self, function: Function, progress: Progress | None = None,
                  source: FunctionSource | None = None) -> Deployed:
        """Have the image manager make what the function's driver runs, and hand both to the
        driver, in this process."""
        source = source or FunctionSource.decode(function.source)
        choice = None
        if function.drivers:
            choice = self._deploy_many(function, source, progress)
            driver = choice.ready()[0].driver
        else:
            driver = self.drivers.get(function.driver)
            driver.check(function)
            driver.deploy(function, source, self._artifact(function, source, driver.runs, progress), progress)
            function.driver_status = {function.driver: {"status": FunctionStatus.READY.value, "reason": ""}}
        deployed = Deployed(
            function=function,
            driver=driver,
            choice=choice,
            validate_in=_schema_validator(function.schema.get("in"), "input"),
            validate_out=_schema_validator(function.schema.get("out"), "output"),
            store_version=self.store.version(),
        )
        self._deployed[(function.org, function.name)] = deployed
        self._watch_deletions()
        return deployed

    def _artifact(self, function: Function, source: FunctionSource, runs: Runs,
                  progress: Progress | None, made: dict[Runs, Artifact] | None = None) -> Artifact:
        """What a driver of `runs` runs, made by the image manager (once per kind in `made`)."""
        if made is not None and runs in made:
            return made[runs]
        if runs == Runs.IMAGE:
            artifact: Artifact = self.images.function_image(function, source, progress)
            function.image = artifact.reference
        else:
            artifact = self.images.environment(function, source, progress)
            if not function.image or made is None:  # an image reference, when there is one, is shown
                function.image = artifact.id
        if made is not None:
            made[runs] = artifact
        return artifact

    def _deploy_many(self, function: Function, source: FunctionSource, progress: Progress | None) -> DriverChoice:
        """Deploy on each of the function's drivers; the ones that fail are left out, with
        their reason, unless all fail (DeployError with every reason)."""
        # Here, not with this module: most functions have one driver, and need none of it.
        from .drivers.choice import ERROR, DriverChoice, DriverEntry, parse_drivers

        mode, weights = parse_drivers(function.drivers)
        made: dict[Runs, Artifact] = {}
        entries = []
        function.image = ""
        for name, weight in weights.items():
            entry = DriverEntry(name, None, weight)  # type: ignore[arg-type]
            try:
                entry.driver = self.drivers.get(name)
                entry.driver.check(function)
                if progress:
                    progress(f"deploying on driver {name}")
                entry.driver.deploy(function, source,
                                    self._artifact(function, source, entry.driver.runs, progress, made), progress)
            except Exception as exc:
                entry.status, entry.reason = ERROR, str(exc) or type(exc).__name__
                if progress:
                    progress(f"driver {name} failed: {entry.reason}")
            entries.append(entry)
        choice = DriverChoice(mode, entries)
        function.driver_status = choice.status()
        if not choice.ready():
            raise DeployError("no driver could deploy it: " + choice.reasons(), function)
        return choice

    # ------------------------------------------------------------------ resolve

    def resolve(self, org: str, name: str) -> Deployed:
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
                    or not deployed.is_live(function)):
                deployed = self._activate(function)
            deployed.function = function
            deployed.store_version = version
            deployed.checked = clock
            return deployed

    def deployed(self, org: str, name: str) -> Deployed | None:
        """What this process last resolved for the function, without looking at the store."""
        return self._deployed.get((org, name))

    # ------------------------------------------------------------------ records

    def get(self, name: str, org: str) -> Function:
        """The function called `name`; NotFoundError when there is none."""
        return self.store.get(Function, org, name)

    def list(self, org: str) -> list[Function]:
        """Every function of the organization, by name."""
        return self.store.list(Function, org)

    def delete(self, name: str, org: str) -> None:
        """Stop the function's workers and remove it; its run history stays."""
        with self._function_lock(org, name):
            function = self.store.get(Function, org, name)
            function.status = FunctionStatus.DELETING
            self.store.update(function)
            deployed = self._deployed.pop((org, name), None)
            names = driver_names_of(function)
            failures = []
            for driver_name in names:  # each driver removes what it made, even after a failed deploy
                try:
                    self.drivers.get(driver_name).undeploy(function)
                except Exception as exc:
                    failures.append(f"{driver_name}: {exc}")
            if failures and len(failures) == len(names):
                raise DeployError(f"removing {name!r} failed: " + "; ".join(failures), function)
            self.store.delete(Function, org, name)
            if deployed is not None:
                deployed.function.status = FunctionStatus.DELETED

    def forget_deleted(self) -> list[str]:
        """Let go of the workers and driver state this process holds for functions that
        another process deleted (each driver's `forget`); the names let go of. Without this a
        function deleted through one server kept its warm workers on every other."""
        gone = []
        for org, name in list(self._deployed):
            if self._exists(org, name):
                continue
            with self._function_lock(org, name):
                if self._exists(org, name):  # deployed again meanwhile
                    continue
                deployed = self._deployed.pop((org, name), None)
                if deployed is None:
                    continue
                drivers = ([entry.driver for entry in deployed.choice.entries if entry.driver is not None]
                           if deployed.choice is not None else [deployed.driver])
                for driver in drivers:
                    try:
                        driver.forget(deployed.function)
                    except Exception:  # the others still let go
                        log.exception("letting go of %s (deleted elsewhere) failed", name)
                deployed.function.status = FunctionStatus.DELETED
                gone.append(name)
        return gone

    def _exists(self, org: str, name: str) -> bool:
        try:
            self.store.get(Function, org, name)
        except NotFoundError:
            return False
        return True

    def _watch_deletions(self) -> None:
        """Look for functions deleted elsewhere whenever another process has written the store,
        on a thread of its own (started once this process holds a function)."""
        with self._lock:
            if self._watcher is not None or self._closing.is_set():
                return
            self._watcher = threading.Thread(target=self._deletions_loop, name="dispatch-deletions", daemon=True)
            self._watcher.start()

    def _deletions_loop(self) -> None:
        seen = self.store.version()
        while not self._closing.wait(DELETIONS_POLL):
            try:
                version = self.store.version()
                if version != seen:
                    seen = version
                    self.forget_deleted()
            except Exception:  # a store that is closing, or down for a moment: look again later
                log.debug("looking for functions deleted elsewhere failed", exc_info=True)

    def close(self) -> None:
        """Stop looking for functions deleted elsewhere."""
        self._closing.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(5)

    def _function_lock(self, org: str, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault((org, name), threading.Lock())


def driver_names_of(function: Function) -> list[str]:
    """The names of the drivers a function is deployed on."""
    if not function.drivers:
        return [function.driver]
    from .drivers.choice import parse_drivers

    return list(parse_drivers(function.drivers)[1])


def _driver_names(driver: str | None, drivers: Any, default: str) -> tuple[list[str], Any]:
    """(driver names, the `drivers` field to store) from deploy's options: one driver, or several
    as a split {name: weight} or a failover list (drivers/choice.py)."""
    if drivers is None or drivers == {} or drivers == []:
        return [driver or default], {}
    if driver is not None:
        raise InvalidRequestError("give driver (one) or drivers (several), not both")
    from .drivers.choice import parse_drivers

    mode, weights = parse_drivers(drivers)
    names = list(weights)
    if len(names) == 1:
        return names, {}
    return names, dict(weights) if mode == "split" else names


def _scaling(min_workers: int | None, max_workers: int | None, idle_timeout: float | str | None) -> dict[str, Any]:
    scaling = Scaling()
    scaling.min_workers = scaling.min_workers if min_workers is None else int(min_workers)
    scaling.max_workers = scaling.max_workers if max_workers is None else int(max_workers)
    if idle_timeout is not None:
        scaling.idle_timeout = parse_duration(idle_timeout)
    if scaling.max_workers < 1 or not 0 <= scaling.min_workers <= scaling.max_workers:
        raise InvalidRequestError("workers must satisfy 0 <= min_workers <= max_workers, max_workers >= 1")
    return scaling.__dict__.copy()


def _resources(memory: int | str | None, cpu: float | None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if memory is not None:
        resources["memory"] = parse_size(memory)
    if cpu is not None:
        resources["cpu"] = float(cpu)
    return resources


def _check_schema(schema: Any, option: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    if isinstance(schema, str):
        schema = json_or_file(schema, option)
    if not isinstance(schema, (dict, bool)):
        raise InvalidRequestError(f"{option} must be a JSON Schema object")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(f"{option} is not a valid JSON Schema: {exc.message}") from None
    return schema


def _schema_validator(schema: dict[str, Any] | None, what: str) -> Validator | None:
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


__all__ = ["Deployed", "FunctionManager", "driver_names_of", "max_workers"]
