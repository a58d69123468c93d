"""Package a function by value: its code, the globals it uses, and what it needs installed.

cloudpickle already serializes functions from `__main__` (a notebook, a script) by value. A
function from a local module (one no installed distribution provides) is made to travel by
value too, so a worker needs nothing from the caller's working directory. Modules from
installed distributions travel by reference and become requirements pinned to the versions
installed here.
"""

from __future__ import annotations

import base64
import dis
import hashlib
import importlib.metadata
import inspect
import linecache
import sys
import types
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import cloudpickle
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..model import InvalidRequestError
from ..runtime.worker import cell_is_filled

# The runtime brings these itself; a function that uses them does not need them declared.
_RUNTIME_MODULES = {"dispatch_kernel", "cloudpickle"}


@dataclass
class FunctionSource:
    """A function ready to ship: the pickled callable and what its environment must hold."""

    handler: str
    convention: str  # "plain" or "dispatch" (handle(ctx, payload))
    payload: bytes  # cloudpickle of the callable
    requirements: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # top-level modules to import ahead of forks
    signature: str = ""
    # Where the code travelling by value was written, so stack traces can say so:
    # (name, first line) of each function -> its file or notebook cell, and those files' text.
    origins: dict[tuple[str, int], str] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Identifies the code and its requirements; equal digests deploy nothing new."""
        h = hashlib.sha256(self.payload)
        h.update("\0".join(self.requirements).encode())
        return h.hexdigest()

    def encode(self) -> str:
        """Base64 text of the whole source (for storage and REST)."""
        return base64.b64encode(cloudpickle.dumps(self)).decode()

    @staticmethod
    def decode(text: str) -> FunctionSource:
        """The inverse of `encode()`."""
        return cloudpickle.loads(base64.b64decode(text))


def calling_convention(fn: Callable[..., Any]) -> str:
    """"dispatch" for Dispatch's `handle(ctx, payload)`, else "plain"."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "plain"
    positional = [
        p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) == 2 and len(positional) == 2 and positional[0].name in ("ctx", "context"):
        return "dispatch"
    return "plain"


def package(fn: Callable[..., Any], requirements: list[str] | None = None) -> FunctionSource:
    """Package `fn` with the requirements detected from its code plus `requirements`."""
    if not callable(fn):
        raise InvalidRequestError(f"expected a function, got {type(fn).__name__}")
    modules = sorted(referenced_modules(fn))
    by_value = [m for m in _local_modules(fn) if m not in sys.builtin_module_names]
    for module in by_value:
        cloudpickle.register_pickle_by_value(sys.modules[module])
    try:
        payload = cloudpickle.dumps(fn, protocol=5)
    except Exception as exc:
        raise InvalidRequestError(f"cannot package {_name(fn)}: {exc}") from exc
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(sys.modules[module])
    detected = requirements_for(modules)
    extra = [r.strip() for r in requirements or [] if r.strip()]
    named = {_requirement_name(r) for r in extra}
    merged = sorted(extra + [r for r in detected if _requirement_name(r) not in named])
    try:
        signature = str(inspect.signature(fn))
    except (TypeError, ValueError):
        signature = "(...)"
    origins, sources = _origins(fn)
    return FunctionSource(
        handler=_name(fn),
        convention=calling_convention(fn),
        payload=payload,
        requirements=merged,
        modules=[m for m in modules if m not in by_value],
        signature=signature,
        origins=origins,
        sources=sources,
    )


_MAX_SOURCE_LINES = 20_000


def _origins(fn: Callable[..., Any]) -> tuple[dict[tuple[str, int], str], dict[str, list[str]]]:
    """The files the by-value functions come from, and their text (IPython puts cells in
    linecache, so notebook code is found too)."""
    origins: dict[tuple[str, int], str] = {}
    sources: dict[str, list[str]] = {}
    for function in _walk(fn)[1]:
        code = function.__code__
        origins[(code.co_name, code.co_firstlineno)] = code.co_filename
        if code.co_filename not in sources:
            lines = linecache.getlines(code.co_filename)
            sources[code.co_filename] = lines if len(lines) <= _MAX_SOURCE_LINES else []
    return origins, sources


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def referenced_modules(fn: Callable[..., Any]) -> set[str]:
    """Top-level names of the non-standard modules `fn` uses, following local helpers."""
    return {m for m in _walk(fn)[0] if m and _is_third_party(m)}


def _walk(fn: Callable[..., Any]) -> tuple[set[str], list[types.FunctionType]]:
    """The modules `fn` reaches, and the functions it reaches that travel by value (its own,
    helpers it calls, closures, methods of classes defined beside it)."""
    found: set[str] = set()
    local: list[types.FunctionType] = []
    seen: set[int] = set()
    todo: list[Any] = [fn]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            found.add(obj.__name__.partition(".")[0])
            continue
        func = inspect.unwrap(obj) if callable(obj) else obj
        code = getattr(func, "__code__", None)
        if code is None:
            module = getattr(obj, "__module__", None)
            if isinstance(module, str):
                found.add(module.partition(".")[0])
            if isinstance(obj, type):  # a class defined here: follow its methods
                todo.extend(v for v in vars(obj).values() if isinstance(v, types.FunctionType))
            continue
        module = (getattr(func, "__module__", None) or "").partition(".")[0]
        if module and module != "__main__":
            found.add(module)
            if module in _distributions() or not _is_third_party(module):
                continue  # installed code travels by reference: no need to look inside
        if isinstance(func, types.FunctionType):
            local.append(func)
        scope = getattr(func, "__globals__", {})
        cells = [c.cell_contents for c in (getattr(func, "__closure__", None) or ()) if cell_is_filled(c)]
        for code_obj in _code_objects(code):
            found.update(_imported_modules(code_obj))
            todo.extend(scope[name] for name in code_obj.co_names if name in scope)
        todo.extend(cells)
    return found, local


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _imported_modules(code: types.CodeType) -> set[str]:
    return {
        ins.argval.partition(".")[0]
        for ins in dis.get_instructions(code)
        if ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str)
    }


def _is_third_party(module: str) -> bool:
    return (
        module not in sys.stdlib_module_names
        and module not in sys.builtin_module_names
        and module not in _RUNTIME_MODULES
        and module != "__main__"
        and not module.startswith("_")
    )


def _local_modules(fn: Callable[..., Any]) -> list[str]:
    """Modules `fn` uses that no installed distribution provides: they travel by value."""
    distributions = _distributions()
    local = []
    for module in referenced_modules(fn):
        if module in distributions or module not in sys.modules:
            continue
        if getattr(sys.modules[module], "__file__", None):
            local.append(module)
    return sorted(local)


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def requirements_for(modules: list[str] | set[str]) -> list[str]:
    """`name==version` for the installed distributions that provide `modules`."""
    distributions = _distributions()
    pins = set()
    for module in modules:
        for dist in distributions.get(module, []):
            try:
                pins.add(f"{dist}=={importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                continue
    return sorted(pins)


def _requirement_name(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        raise InvalidRequestError(f"not a valid requirement: {requirement!r}") from None
