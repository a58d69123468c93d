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
from typing import Any, Callable

from . import plugins
from .drivers.base import FaaSDriver, Runs
from .images.base import Progress
from .images.manager import ImageManager
from .inputs import json_or_file
from .model import ConflictError, DeployError, Function, FunctionStatus, Image, InvalidRequestError, NotFoundError
from .model import Scaling, check_name
from .packaging import FunctionSource, package
from .secrets import SecretManager
from .settings import Settings
from .store.base import EntityStore
from .units import parse_duration, parse_size

log = logging.getLogger(__name__)

STORE_POLL = 0.02  # seconds between checks for functions changed by other processes

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


def max_workers(function: Function) -> int:
    """How many workers the function may have at once (at least one)."""
    return max(1, int(function.scaling.get("max_workers", 1)))


def prestart(settings: Settings, drivers: plugins.Loaded[FaaSDriver]) -> None:
    """Have the default driver get ready for functions that need nothing beyond this
    interpreter (the local driver starts its fork server), so that a notebook's first cell
    finds it up. The core runs this on a thread of its own while it starts; a failure only
    means the first deploy does the work (and says why if it fails again)."""
    try:
        driver = drivers.get(settings.driver)
        if driver.runs == Runs.ENVIRONMENT:
            builder = plugins.load("image builder", settings.images)(settings)
            driver.prestart(builder.prepare([]))
    except Exception as exc:
        log.debug("prestarting the %s driver failed: %s", settings.driver, exc)


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

    # ------------------------------------------------------------------ deploy

    def deploy(self, fn: Callable[..., Any] | FunctionSource, name: str | None = None, *, org: str,
               requirements: Iterable[str] | None = None, secrets: Iterable[str] | None = None,
               timeout: float | str | None = None, memory: int | str | None = None, cpu: float | None = None,
               schema_in: dict[str, Any] | str | None = None, schema_out: dict[str, Any] | str | None = None,
               min_workers: int | None = None, max_workers: int | None = None,
               idle_timeout: float | str | None = None, driver: str | None = None,
               tags: dict[str, str] | None = None, progress: Progress | None = None,
               expect_revision: int | None = None, image: str | None = None) -> Function:
        """Package `fn`, build what it runs in and make it runnable; returns the READY function.

        Deploying unchanged code and configuration again changes nothing. Changed code is
        UPDATING until the new revision is ready; runs after that use it. `expect_revision`
        makes it conditional: 0 creates only (ConflictError when the name is taken), N updates
        only revision N (NotFoundError when missing, ConflictError when it has moved on).
        """
        source = fn if isinstance(fn, FunctionSource) else package(fn, list(requirements or []))
        name = check_name("function", name or source.handler.rsplit(".", 1)[-1])
        secret_names = sorted(set(secrets or []))
        self.secrets.require(secret_names, org)  # NotFoundError names the missing secret
        driver_name = driver or self.settings.driver
        self.drivers.get(driver_name)  # an unknown driver is refused before anything is stored
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
            "scaling": _scaling(min_workers, max_workers, idle_timeout),
            "image_name": image or "",
        }
        digest = hashlib.sha256((source.digest + json.dumps(spec, sort_keys=True)).encode()).hexdigest()
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
                  source: FunctionSource | None = None) -> Deployed:
        """Have the image manager make what the function's driver runs, and hand both to the
        driver, in this process."""
        source = source or FunctionSource.decode(function.source)
        driver = self.drivers.get(function.driver)
        if driver.runs == Runs.IMAGE:
            artifact = self.images.function_image(function, source, progress)
            function.image = artifact.reference
        else:
            artifact = self.images.environment(function, source, progress)
            function.image = artifact.id
        driver.deploy(function, source, artifact, progress)
        deployed = Deployed(
            function=function,
            driver=driver,
            validate_in=_schema_validator(function.schema.get("in"), "input"),
            validate_out=_schema_validator(function.schema.get("out"), "output"),
            store_version=self.store.version(),
        )
        self._deployed[(function.org, function.name)] = deployed
        return deployed

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
                    or not deployed.driver.is_deployed(function)):
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
            self.drivers.get(function.driver).undeploy(function)
            self.store.delete(Function, org, name)
            if deployed is not None:
                deployed.function.status = FunctionStatus.DELETED

    def _function_lock(self, org: str, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault((org, name), threading.Lock())


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


__all__ = ["Deployed", "FunctionManager", "max_workers"]
