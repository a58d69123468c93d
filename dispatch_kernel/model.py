"""Entities, statuses and error types shared by every part of dispatch-kernel (the entities of
events, APIs and identity are in entities.py, which a notebook's first function does not need).

Only the standard library is imported here: worker processes import this module inside a
function's own environment, where nothing but cloudpickle is guaranteed to be installed.
"""

from __future__ import annotations

import contextvars
import getpass
import json
import os
import re
import reprlib
import threading
import time
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Iterator

# Re-exported: run records are encoded as the workers encode outputs.
from .runtime.encoding import describe_python_value as describe_python_value
from .runtime.encoding import dumps, strict_dumps as strict_dumps

DEFAULT_ORG = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class TextEnum(str, Enum):
    """An enum whose members print as their plain value ("READY", not "FunctionStatus.READY")."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class FunctionStatus(TextEnum):
    """Where a function is in its lifecycle (Dispatch's names)."""

    INITIALIZED = "INITIALIZED"
    CREATING = "CREATING"
    READY = "READY"
    ERROR = "ERROR"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    DELETED = "DELETED"


class RunStatus(TextEnum):
    """Where a run is: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """True once the run can no longer change."""
        return self in _FINISHED


_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class ErrorType(TextEnum):
    """Who is to blame for a failed run."""

    INPUT = "InputError"
    FUNCTION = "FunctionError"
    SYSTEM = "SystemError"


# --------------------------------------------------------------------------------------------
# Errors


class DispatchError(Exception):
    """Base of every error dispatch-kernel raises on purpose; `code` is the HTTP status it maps to."""

    code = 500


class InvalidRequestError(DispatchError, ValueError):
    """The request itself is malformed: a bad name, option or value."""

    code = 400


class NotFoundError(DispatchError, LookupError):
    """No entity of that kind and name exists in the organization."""

    code = 404


class ConflictError(DispatchError):
    """The name is taken, or an update carried a stale revision."""

    code = 409


class UnauthorizedError(DispatchError):
    """The credential is missing, malformed, expired or wrongly signed (HTTP 401)."""

    code = 401


class ForbiddenError(DispatchError, PermissionError):
    """The caller is not allowed to do this (not logged in, or not authorized by policy)."""

    code = 403


class PayloadTooLargeError(InvalidRequestError):
    """A request body over the server's size limit."""

    code = 413


class StorageError(DispatchError):
    """The store could not record something: its disk is full (or over its quota). Nothing was
    recorded by the failed call; what was acknowledged before stays. HTTP 507."""

    code = 507


class DeployError(DispatchError):
    """Deploying a function failed; the function is left in status ERROR with the reason."""

    code = 500

    def __init__(self, message: str, function: Function | None = None) -> None:
        super().__init__(message)
        self.function = function


class RunError(DispatchError):
    """A run failed. `.type` is its error type and `.run` the run record."""

    type: ErrorType = ErrorType.SYSTEM

    def __init__(self, run: Run) -> None:
        self.run = run
        message = run.error.message if run.error else "run failed"
        super().__init__(f"{self.type.value}: {message}")

    @property
    def stacktrace(self) -> str:
        """The stack trace the run reported, if any (the function's own frames)."""
        return self.run.error.stacktrace if self.run.error else ""

    @staticmethod
    def for_run(run: Run) -> RunError:
        """The RunError subclass that matches the run's error type."""
        kind = run.error.type if run.error else ErrorType.SYSTEM
        return _RUN_ERRORS[ErrorType(kind)](run)


class RunInputError(RunError):
    """The input failed the function's input schema; no user code ran."""

    type = ErrorType.INPUT


class RunFunctionError(RunError):
    """The function raised, or returned output that failed its output schema."""

    type = ErrorType.FUNCTION


class RunSystemError(RunError):
    """The platform failed the run: a timeout, a memory limit, a crashed worker."""

    type = ErrorType.SYSTEM


_RUN_ERRORS: dict[ErrorType, type[RunError]] = {
    ErrorType.INPUT: RunInputError,
    ErrorType.FUNCTION: RunFunctionError,
    ErrorType.SYSTEM: RunSystemError,
}


def check_name(kind: str, name: object) -> str:
    """`name` when it is a valid name for an entity of `kind` (letters, digits, '-', '_' and
    '.', starting with a letter or digit, up to 63 characters); else InvalidRequestError."""
    if isinstance(name, str) and _NAME.match(name):
        return name
    hint = "; give a lambda a name=" if kind == "function" else ""
    raise InvalidRequestError(
        f"{name!r} is not a valid {kind} name (letters, digits, '-', '_' and '.'; up to 63 characters{hint})"
    )


# --------------------------------------------------------------------------------------------
# Entities

SYSTEM_ORG = "*"  # where organizations and global policies are kept: never a valid org name
# The entities of events, APIs and identity are in entities.py: a notebook's first function
# needs none of them.


def now() -> float:
    """Wall-clock time in seconds since the epoch, the unit of every timestamp we record."""
    return time.time()


_SUFFIXES_PER_DRAW = 800  # 5 random bytes each: one os.urandom call per 800 ids
_suffixes: Iterator[str] = iter(())
_suffixes_lock = threading.Lock()


def _forget_suffixes() -> None:  # in a forked child: never repeat the parent's suffixes
    global _suffixes, _suffixes_lock
    _suffixes, _suffixes_lock = iter(()), threading.Lock()  # another thread may have held it


os.register_at_fork(after_in_child=_forget_suffixes)


def _draw_suffixes() -> str:
    """Refill the random suffixes from os.urandom (one system call, which lets go of the GIL
    and must wait to take it back in a busy server, per several hundred ids); one of them."""
    global _suffixes
    with _suffixes_lock:
        suffix = next(_suffixes, None)  # another thread may have refilled them meanwhile
        if suffix is None:
            text = os.urandom(5 * _SUFFIXES_PER_DRAW).hex()
            _suffixes = iter([text[i:i + 10] for i in range(0, len(text), 10)])
            suffix = next(_suffixes)
    return suffix


def new_id() -> str:
    """A unique id that sorts by creation time (nanosecond clock, then 40 random bits)."""
    # next() on a list iterator is one C call, atomic under the GIL: no lock per id.
    return f"{time.time_ns():016x}{next(_suffixes, None) or _draw_suffixes()}"


_actor: contextvars.ContextVar[str] = contextvars.ContextVar("dispatch_actor", default="")
_process_user: list[str] = []


def actor() -> str:
    """Who is acting: the subject a server request runs as (set by `acting_as`), else the user
    of this process (the embedded client, a script)."""
    name = _actor.get()
    if name:
        return name
    if not _process_user:
        try:
            _process_user.append(getpass.getuser())
        except Exception:  # no user name in this environment (a container without passwd)
            _process_user.append(f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown")
    return _process_user[0]


def acting_as(subject: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` with `subject` as the actor entities record as creator and changer."""
    token = _actor.set(subject)
    try:
        return fn(*args, **kwargs)
    finally:
        _actor.reset(token)


class Record:
    """`repr()` and `==` as dataclasses make them, written once here for the model's classes
    (each declared with `@dataclass(repr=False, eq=False)`): dataclasses would generate and
    compile both for every class, which costs a fresh process's first deploy ~3 ms."""

    __slots__ = ()

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        compared = [f.name for f in fields(self) if f.compare]
        return tuple(getattr(self, n) for n in compared) == tuple(getattr(other, n) for n in compared)

    __hash__ = None  # as a dataclass with eq: mutable, so unhashable


@dataclass(repr=False, eq=False)
class Entity(Record):
    """Fields every entity carries (Dispatch's BaseEntity, snake_case), and who created it and
    who last changed it."""

    name: str
    org: str = DEFAULT_ORG
    id: str = field(default_factory=lambda: os.urandom(16).hex())  # 128 random bits, as uuid4's
    revision: int = 0
    created: float = field(default_factory=now)
    modified: float = field(default_factory=now)
    tags: dict[str, str] = field(default_factory=dict)
    status: str = ""
    reason: str = ""
    created_by: str = field(default_factory=actor)
    updated_by: str = field(default_factory=actor)

    kind = "entity"

    def touch(self) -> None:
        """Record that whoever is acting changes the entity (the store sets `modified`)."""
        self.updated_by = actor()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Rebuild the entity from `to_dict()` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        # Recorded before entities recorded their actors: nobody known, not whoever reads it now.
        known = {"created_by": "", "updated_by": ""}
        return cls(**{**known, **{k: v for k, v in data.items() if k in names}})


@dataclass(repr=False, eq=False)
class Scaling(Record):
    """How many warm workers a function keeps and for how long an idle one lives."""

    min_workers: int = 0
    max_workers: int = field(default_factory=lambda: os.cpu_count() or 2)
    idle_timeout: float = 300.0


@dataclass(repr=False, eq=False)
class Function(Entity):
    """A deployed function: its packaged source, configuration and lifecycle status."""

    handler: str = ""
    convention: str = "plain"  # "plain": f(*args, **kwargs); "dispatch": handle(ctx, payload)
    image: str = ""  # the environment (venv) or image the function runs in
    image_name: str = ""  # the Image (create_image) it is built on, if any
    requirements: list[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)  # {"in": ..., "out": ...}
    secrets: list[str] = field(default_factory=list)
    timeout: float | None = None  # seconds
    resources: dict[str, Any] = field(default_factory=dict)  # {"memory": bytes, "cpu": cores}
    driver: str = "local"  # the first of `drivers`, or the only one
    # Several drivers: {name: weight} splits runs by weight, [name, ...] fails over in order;
    # empty when the function has one driver. `driver_status` is each one's state.
    drivers: dict[str, float] | list[str] = field(default_factory=dict)
    driver_status: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {status, reason}
    scaling: dict[str, Any] = field(default_factory=lambda: Scaling().__dict__.copy())
    digest: str = field(default="", repr=False)  # of the code and the options workers depend on
    source: str = field(default="", repr=False)  # the package: FunctionSource.encode()'s JSON text

    kind = "function"

    def public_dict(self) -> dict[str, Any]:
        """`to_dict()` without the (large, opaque) packaged source."""
        data = self.to_dict()
        data.pop("source", None)
        return data


@dataclass(repr=False, eq=False)
class Secret(Entity):
    """A named key/value map, stored encrypted; `values` is only filled when it is read."""

    keys: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict, repr=False)
    ciphertext: str = field(default="", repr=False)

    kind = "secret"

    def to_dict(self) -> dict[str, Any]:
        """Every field but the plaintext values: this is what a store keeps."""
        data = super().to_dict()
        data.pop("values", None)
        return data

    def public_dict(self) -> dict[str, Any]:
        """The secret's metadata and key names, never its values or ciphertext."""
        data = self.to_dict()
        data.pop("ciphertext", None)
        return data


@dataclass(repr=False, eq=False)
class BaseImage(Entity):
    """A language runtime image in a registry that images are built on (Dispatch's BaseImage)."""

    image_url: str = ""  # registry/repository:tag as given
    language: str = "python3"
    digest: str = ""  # the manifest digest it resolved to when created
    python: str = ""  # the Python version inside, "3.11", when the image says

    kind = "base_image"


@dataclass(repr=False, eq=False)
class Image(Entity):
    """A base image plus runtime requirements and system packages, built and pushed (Dispatch's
    Image); functions deployed with `image=` are built on it."""

    base_image: str = ""  # the BaseImage's name
    requirements: list[str] = field(default_factory=list)
    system_packages: list[str] = field(default_factory=list)
    image_url: str = ""  # registry/repository@sha256:..., once built
    digest: str = ""

    kind = "image"


@dataclass(repr=False, eq=False)
class RunFailure(Record):
    """Why a run failed: who is to blame, a message, and the function's own stack trace."""

    type: str
    message: str
    stacktrace: str = ""


@dataclass(repr=False, eq=False)
class Run(Record):
    """One execution of a function: input, output or error, logs and times."""

    function: str
    id: str = field(default_factory=new_id)
    org: str = DEFAULT_ORG
    status: RunStatus = RunStatus.QUEUED
    input: Any = None
    output: Any = None
    error: RunFailure | None = None
    logs: dict[str, str] = field(default_factory=lambda: {"stdout": "", "stderr": ""})
    event: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    queued: float = field(default_factory=now)
    started: float | None = None
    finished: float | None = None
    cold_start: bool = False
    function_revision: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    driver: str = ""  # which of the function's drivers ran it (or was asked to)

    kind = "run"

    @property
    def times(self) -> dict[str, float | None]:
        """Dispatch's `times` block: queued, started, finished."""
        return {"queued": self.queued, "started": self.started, "finished": self.finished}

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, once finished."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def result(self, return_exceptions: bool = False) -> Any:
        """The output of a SUCCEEDED run; otherwise its RunError, raised (or returned, with
        `return_exceptions`, as map() yields it)."""
        if self.status == RunStatus.SUCCEEDED:
            return self.output
        error = RunError.for_run(self)
        if return_exceptions:
            return error
        raise error

    def fail(self, error_type: ErrorType, message: str, stacktrace: str = "") -> Run:
        """Mark the run FAILED with the given error (now)."""
        self.status = RunStatus.FAILED
        self.error = RunFailure(ErrorType(error_type).value, message, stacktrace)
        self.finished = now()
        if self.started is None:
            self.started = self.finished
        return self

    def to_dict(self, json_ready: bool = True) -> dict[str, Any]:
        """A JSON-ready dict; values that are not JSON are described, not lost silently.

        With `json_ready=False` input and output are left as they are, for a caller that
        passes the dict straight to model.dumps (which describes them the same way, in the
        same pass instead of a round trip of their own).
        """
        convert = _jsonable if json_ready else _same
        return {
            "id": self.id,
            "org": self.org,
            "function": self.function,
            "function_revision": self.function_revision,
            "status": RunStatus(self.status).value,
            "input": convert(self.input),
            "output": convert(self.output),
            "error": self.error.__dict__.copy() if self.error else None,
            "logs": dict(self.logs),
            "event": self.event,
            "http": self.http,
            "times": self.times,
            "cold_start": self.cold_start,
            "tags": dict(self.tags),
            "driver": self.driver,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """Rebuild a run from `to_dict()` output."""
        times = data.get("times") or {}
        error = data.get("error")
        return cls(
            function=data["function"],
            id=data["id"],
            org=data.get("org", DEFAULT_ORG),
            status=RunStatus(data.get("status", "QUEUED")),
            input=data.get("input"),
            output=data.get("output"),
            error=RunFailure(**error) if error else None,
            logs=data.get("logs") or {"stdout": "", "stderr": ""},
            event=data.get("event"),
            http=data.get("http"),
            queued=times.get("queued") or now(),
            started=times.get("started"),
            finished=times.get("finished"),
            cold_start=bool(data.get("cold_start")),
            function_revision=int(data.get("function_revision") or 0),
            tags=data.get("tags") or {},
            driver=data.get("driver") or "",
        )


def _same(value: Any) -> Any:
    return value


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Enum):
        return value.value
    return json.loads(dumps(value))

