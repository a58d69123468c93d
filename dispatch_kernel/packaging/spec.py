"""A function described as data (a REST request body, a YAML document) made deployable.

Two forms of code are accepted: source text with the name of its handler, which is run here in a
fresh `__main__` namespace so that cloudpickle carries the handler by value, and the package the
Python client builds (`FunctionSource.encode()`). Both faces that take such descriptions, the
REST API and the CLI, come through here, so they accept exactly the same fields.
"""

from __future__ import annotations

import linecache
import types
from dataclasses import replace
from typing import Any

from ..model import Function, InvalidRequestError
from .source import FunctionSource, _requirement_name, package

# The options of Dispatch.deploy that a description may carry, beside name, source and scaling.
_OPTIONS = ("secrets", "timeout", "memory", "cpu", "driver", "tags", "image")


def handler_names(code: str, filename: str = "<source>") -> list[str]:
    """The top-level functions that `code` defines (to choose a handler from), in order."""
    import ast

    try:
        tree = ast.parse(code, filename)
    except SyntaxError as exc:
        raise InvalidRequestError(_syntax_error(exc, filename)) from None
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def package_text(code: str, handler: str | None = None, requirements: list[str] | None = None,
                 filename: str = "<source>") -> FunctionSource:
    """Run `code` as a fresh `__main__` module and package its function `handler`.

    Without a handler, `handle` is taken (Dispatch's convention), else the only function the
    code defines. Imports at the top of the code run here; an import inside the handler runs
    in the function's own environment, where `requirements` are installed.
    """
    if not isinstance(code, str) or not code.strip():
        raise InvalidRequestError("the source code is empty")
    if handler is None:
        names = handler_names(code, filename)
        if "handle" in names:
            handler = "handle"
        elif len(names) == 1:
            handler = names[0]
        else:
            found = ", ".join(names) or "none"
            raise InvalidRequestError(f"{filename}: name the handler (functions defined: {found})")
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as exc:
        raise InvalidRequestError(_syntax_error(exc, filename)) from None
    except ValueError as exc:  # null bytes in the text
        raise InvalidRequestError(f"{filename}: {exc}") from None
    module = types.ModuleType("__main__")
    module.__file__ = filename
    lines = code.splitlines(keepends=True)
    # Stack traces and the packager read the text through linecache; it is registered only
    # while packaging, so a long-running server does not keep every deployed file.
    registered = filename not in linecache.cache
    if registered:
        linecache.cache[filename] = (len(code), None, lines, filename)
    try:
        try:
            exec(compiled, module.__dict__)
        except ImportError as exc:
            raise InvalidRequestError(
                f"{filename}: {type(exc).__name__}: {exc} (an import at the top of the code runs "
                "where it is deployed; import inside the handler instead, so that it runs in the "
                "function's environment with its requirements)"
            ) from None
        except Exception as exc:
            raise InvalidRequestError(f"{filename}: running the code failed: {type(exc).__name__}: {exc}") from None
        fn = module.__dict__.get(handler)
        if fn is None:
            raise InvalidRequestError(f"{filename} defines no {handler!r}")
        if not callable(fn):
            raise InvalidRequestError(f"{filename}: {handler!r} is a {type(fn).__name__}, not a function")
        return package(fn, list(requirements or []))
    finally:
        if registered:
            linecache.cache.pop(filename, None)


def _syntax_error(exc: SyntaxError, filename: str) -> str:
    where = f"{filename}, line {exc.lineno}" if exc.lineno else filename
    return f"{where}: SyntaxError: {exc.msg}"


def deploy_arguments(spec: dict[str, Any], current: Function | None = None,
                     ) -> tuple[FunctionSource, str, dict[str, Any]]:
    """(source, name, options for Dispatch.deploy) from a function description.

    `spec` holds name, source (text as {"code", "handler", "filename"}, or a package as
    base64 text), requirements, schema {"in", "out"}, secrets, timeout, memory, cpu, scaling
    {min_workers, max_workers, idle_timeout}, driver, image (an Image's name) and tags.
    Without a source the code of `current` (the function being updated) is kept.
    """
    if not isinstance(spec, dict):
        raise InvalidRequestError("a function description must be an object")
    name = spec.get("name")
    if name is None and current is not None:
        name = current.name
    requirements = _string_list(spec.get("requirements"), "requirements")
    source_spec = spec.get("source")
    if isinstance(source_spec, dict):
        code = source_spec.get("code")
        handler = source_spec.get("handler")
        filename = source_spec.get("filename") or f"<function {name or handler or 'source'}>"
        if not isinstance(code, str):
            raise InvalidRequestError("source.code must be the function's source text")
        if handler is not None and not isinstance(handler, str):
            raise InvalidRequestError("source.handler must be a name")
        source = package_text(code, handler, requirements, str(filename))
    elif isinstance(source_spec, str):
        source = _merge_requirements(decode_package(source_spec), requirements)
    elif source_spec is None and current is not None:
        source = _merge_requirements(FunctionSource.decode(current.source), requirements)
    else:
        raise InvalidRequestError("source is required: {\"code\", \"handler\"} or a package (base64)")
    if name is None:
        name = source.handler.rsplit(".", 1)[-1]
    if not isinstance(name, str):
        raise InvalidRequestError("name must be a string")
    options: dict[str, Any] = {k: spec[k] for k in _OPTIONS if spec.get(k) is not None}
    if "secrets" in options:
        options["secrets"] = _string_list(options["secrets"], "secrets")
    schema = spec.get("schema") or {}
    if not isinstance(schema, dict):
        raise InvalidRequestError("schema must be an object with \"in\" and \"out\" JSON Schemas")
    if schema.get("in") is not None:
        options["schema_in"] = schema["in"]
    if schema.get("out") is not None:
        options["schema_out"] = schema["out"]
    scaling = spec.get("scaling") or {}
    if not isinstance(scaling, dict):
        raise InvalidRequestError("scaling must be an object")
    for key in ("min_workers", "max_workers", "idle_timeout"):
        if scaling.get(key) is not None:
            options[key] = scaling[key]
    for key in ("min_workers", "max_workers"):
        if key in options and (isinstance(options[key], bool) or not isinstance(options[key], int)):
            raise InvalidRequestError(f"scaling.{key} must be an integer")
    return source, name, options


def decode_package(text: str) -> FunctionSource:
    """The FunctionSource of a package sent as base64 text; a clear error when it is not one."""
    try:
        source = FunctionSource.decode(text)
    except Exception as exc:
        raise InvalidRequestError(f"source is not a function package (base64 cloudpickle): {exc}") from None
    if not isinstance(source, FunctionSource):
        raise InvalidRequestError(f"source is a {type(source).__name__}, not a function package")
    return source


def _merge_requirements(source: FunctionSource, extra: list[str]) -> FunctionSource:
    if not extra:
        return source
    named = {_requirement_name(r) for r in extra}
    merged = sorted(extra + [r for r in source.requirements if _requirement_name(r) not in named])
    return replace(source, requirements=merged)


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{what} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


__all__ = ["decode_package", "deploy_arguments", "handler_names", "package_text"]
