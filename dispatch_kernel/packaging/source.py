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
import inspect
import json
import linecache
import os
import sys
import types
from tokenize import TokenError
from dataclasses import dataclass, field
from typing import Any, Callable

from ..model import InvalidRequestError

# The runtime brings these itself; a function that uses them does not need them declared.
_RUNTIME_MODULES = {"dispatch_kernel", "cloudpickle"}


PACKAGE_FORMAT = "dispatch-package/1"


@dataclass
class FunctionSource:
    """A function ready to ship: opaque code (a cloudpickle, or source text) and, as plain data,
    what its environment must hold and how to call it.

    It travels and is stored as JSON (`encode()`): the pickle is base64 inside it and is never
    loaded anywhere but in a worker, so reading a package runs nothing.
    """

    handler: str
    convention: str  # "plain" or "dispatch" (handle(ctx, payload))
    payload: bytes = b""  # cloudpickle of the callable; empty when `code` is given instead
    requirements: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # top-level modules to import ahead of forks
    signature: str = ""
    # Where the code travelling by value was written, so stack traces can say so:
    # (name, first line) of each function -> its file or notebook cell, and the text of those
    # functions, as (first line, lines) spans per file: only what travels, never whole files.
    origins: dict[tuple[str, int], str] = field(default_factory=dict)
    sources: dict[str, list[tuple[int, list[str]]]] = field(default_factory=dict)
    code: str = ""  # source text whose top-level function `handler` is the function
    filename: str = ""  # the name `code` is run under (stack traces quote it)
    python: str = field(default_factory=lambda: f"{sys.version_info[0]}.{sys.version_info[1]}")

    @property
    def digest(self) -> str:
        """Identifies the code and its requirements; equal digests deploy nothing new."""
        h = hashlib.sha256(self.payload)
        if self.code:
            h.update(b"\0code\0" + self.code.encode() + b"\0" + self.handler.encode())
        h.update("\0".join(self.requirements).encode())
        return h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The package as JSON-ready data; the pickle, if any, as base64 text."""
        return {
            "format": PACKAGE_FORMAT,
            "handler": self.handler,
            "convention": self.convention,
            "payload": base64.b64encode(self.payload).decode(),
            "requirements": list(self.requirements),
            "modules": list(self.modules),
            "signature": self.signature,
            "origins": [[name, line, where] for (name, line), where in sorted(self.origins.items())],
            "sources": {name: [[start, lines] for start, lines in spans] for name, spans in self.sources.items()},
            "code": self.code,
            "filename": self.filename,
            "python": self.python,
        }

    @classmethod
    def from_json(cls, data: Any) -> FunctionSource:
        """The inverse of `to_json()`; InvalidRequestError naming what is wrong with `data`."""
        if not isinstance(data, dict) or data.get("format") != PACKAGE_FORMAT:
            raise InvalidRequestError(f"not a function package (an object of format {PACKAGE_FORMAT!r})")
        try:
            payload = base64.b64decode(data.get("payload") or "", validate=True)
            origins = {(str(name), int(line)): str(where) for name, line, where in data.get("origins") or []}
            sources = {str(name): [(int(start), [str(line) for line in lines]) for start, lines in spans]
                       for name, spans in (data.get("sources") or {}).items()}
            source = cls(
                handler=_text(data.get("handler"), "handler"),
                convention=_text(data.get("convention"), "convention"),
                payload=payload,
                requirements=_texts(data.get("requirements"), "requirements"),
                modules=_texts(data.get("modules"), "modules"),
                signature=_text(data.get("signature", ""), "signature"),
                origins=origins,
                sources=sources,
                code=_text(data.get("code", ""), "code"),
                filename=_text(data.get("filename", ""), "filename"),
                python=_text(data.get("python", ""), "python"),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidRequestError(f"not a function package: {exc}") from None
        if source.convention not in ("plain", "dispatch"):
            raise InvalidRequestError(f"not a function package: unknown convention {source.convention!r}")
        if not source.handler or bool(source.payload) == bool(source.code):
            raise InvalidRequestError("not a function package: it needs a handler and either a payload or code")
        return source

    def encode(self) -> str:
        """JSON text of the whole package (for storage and REST)."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> FunctionSource:
        """The inverse of `encode()`. Nothing is unpickled."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            raise InvalidRequestError(
                "not a function package (JSON text as FunctionSource.encode() writes it; a package "
                "stored by dispatch-kernel 0.1 must be deployed again)") from None
        return cls.from_json(data)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string")
    return value


def _texts(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of strings")
    return list(value)


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
    # Imported here, not with the core: a fresh process then starts its fork server before
    # it pays for them (see Dispatch), and the two overlap.
    import cloudpickle

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
    merged = merge_requirements(requirements_for(modules), requirements or [])
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


def _origins(fn: Callable[..., Any]) -> tuple[dict[tuple[str, int], str], dict[str, list[tuple[int, list[str]]]]]:
    """The files the by-value functions come from, and the text of those functions (IPython
    puts cells in linecache, so notebook code is found too). Only the functions' own lines
    travel: the rest of a file (which may hold anything) stays here."""
    origins: dict[tuple[str, int], str] = {}
    sources: dict[str, list[tuple[int, list[str]]]] = {}
    for function in _walk(fn)[1]:
        code = function.__code__
        origins[(code.co_name, code.co_firstlineno)] = code.co_filename
        lines = linecache.getlines(code.co_filename)
        if not lines:
            continue
        block = _function_lines(code, lines)
        if block:
            sources.setdefault(code.co_filename, []).append((code.co_firstlineno, block))
    return origins, sources


def _function_lines(code: types.CodeType, lines: list[str]) -> list[str]:
    """The lines of the function whose code is `code` in its file's `lines`: from its first
    line (its decorators) to the last its code or its nested functions' reach. The code's
    positions say where that is (Python 3.11 on), so no tokenizer runs: inspect.getblock's
    costs a first deploy ~2 ms of compiling its regular expression alone."""
    first = code.co_firstlineno
    last = _last_line(code) if hasattr(code, "co_positions") else 0
    if last >= first:
        return lines[first - 1:last]
    try:
        return list(inspect.getblock(lines[first - 1:]))
    except (IndexError, SyntaxError, TokenError):
        return []


def _last_line(code: types.CodeType) -> int:
    """The last line any instruction of `code` (or of the code nested in it) comes from."""
    last = max((end for _, end, _, _ in code.co_positions() if end is not None), default=0)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _last_line(const))
    return last


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def referenced_modules(fn: Callable[..., Any]) -> set[str]:
    """Top-level names of the non-standard modules `fn` uses, following local helpers."""
    return {m for m in _walk(fn)[0] if m and _is_third_party(m)}


def _walk(fn: Callable[..., Any]) -> tuple[set[str], list[types.FunctionType]]:
    """The modules `fn` reaches, and the functions it reaches that travel by value (its own,
    helpers it calls, closures, methods of classes defined beside it)."""
    from ..runtime.closures import cell_is_filled

    found: set[str] = set()
    local: list[types.FunctionType] = []
    seen: set[int] = set()
    todo: list[Any] = [fn]
    installed: dict[str, list[str]] | None = None  # once per walk at most: it stats every folder on sys.path
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
            if not _is_third_party(module):
                continue
            if installed is None:  # read only for a walk that meets a third-party module
                installed = _distributions()
            if module in installed:
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
    referenced = referenced_modules(fn)
    if not referenced:  # the map of distributions costs ~100 ms to build: only when needed
        return []
    distributions = _distributions()
    local = []
    for module in referenced:
        if module in distributions or module not in sys.modules:
            continue
        if getattr(sys.modules[module], "__file__", None):
            local.append(module)
    return sorted(local)


def _path_stamp() -> tuple:
    """What changes when a distribution is installed or removed: sys.path and the modification
    times of its entries (installing into a folder adds entries to it, which changes its mtime).
    A stat per entry: microseconds, where reading every distribution's metadata takes tens of
    milliseconds."""
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamp.append((entry, None))
    return tuple(stamp)


_DISTRIBUTIONS: tuple[tuple, dict[str, list[str]]] | None = None


def _distributions() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions that provide it; read again when sys.path
    or one of its folders changed (`%pip install` in a running kernel), else from memory."""
    global _DISTRIBUTIONS
    stamp = _path_stamp()
    cached = _DISTRIBUTIONS
    if cached is not None and cached[0] == stamp:
        return cached[1]
    import importlib
    import importlib.metadata

    importlib.invalidate_caches()  # so that the finders see what was installed
    distributions = importlib.metadata.packages_distributions()
    _DISTRIBUTIONS = (stamp, distributions)
    return distributions


def requirements_for(modules: list[str] | set[str]) -> list[str]:
    """`name==version` for the installed distributions that provide `modules`."""
    if not modules:
        return []
    import importlib.metadata

    distributions = _distributions()
    pins = set()
    for module in modules:
        for dist in distributions.get(module, []):
            try:
                pins.add(f"{dist}=={importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                continue
    return sorted(pins)


def merge_requirements(detected: list[str], extra: list[str]) -> list[str]:
    """`extra` requirements plus the `detected` ones they do not name, sorted (a caller's
    requirement overrides the pin detected for the same distribution)."""
    extra = [r.strip() for r in extra if r.strip()]
    named = {_requirement_name(r) for r in extra}
    return sorted(extra + [r for r in detected if _requirement_name(r) not in named])


def _requirement_name(requirement: str) -> str:
    # packaging's requirement parser costs ~25 ms to import: only deploys that name one pay it.
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        raise InvalidRequestError(f"not a valid requirement: {requirement!r}") from None
