"""A function described as data (a REST request body, a YAML document) made deployable.

Two forms of code are accepted: source text with the name of its handler (text.py: parsed
here, first run in a worker), and the package the Python client builds (`FunctionSource.encode()`:
JSON, with the pickle opaque inside it). Both faces that take such descriptions, the REST API and
the CLI, come through here, so they accept exactly the same fields.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..model import Function, InvalidRequestError
from .source import FunctionSource, merge_requirements
from .text import package_text

# The options of Dispatch.deploy that a description may carry, beside name, source and scaling.
_OPTIONS = ("secrets", "timeout", "memory", "cpu", "driver", "drivers", "tags", "image")


def deploy_arguments(spec: dict[str, Any], current: Function | None = None,
                     ) -> tuple[FunctionSource, str, dict[str, Any]]:
    """(source, name, options for Dispatch.deploy) from a function description.

    `spec` holds name, source (text as {"code", "handler", "filename"}, or a package as the
    text FunctionSource.encode() writes), requirements, schema {"in", "out"}, secrets, timeout, memory, cpu, scaling
    {min_workers, max_workers, idle_timeout}, driver or drivers (a split or a failover list), image (an Image's name) and tags.
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
    elif source_spec is None and current is not None:  # an update that keeps the code
        source = _merge_requirements(FunctionSource.decode(current.source), requirements)
    else:
        raise InvalidRequestError('source is required: {"code", "handler"} or a package '
                                  "(as FunctionSource.encode() writes it)")
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
    """The FunctionSource of a package sent as text; a clear error when it is not one."""
    try:
        return FunctionSource.decode(text)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"source is {exc}") from None


def _merge_requirements(source: FunctionSource, extra: list[str]) -> FunctionSource:
    if not extra:
        return source
    return replace(source, requirements=merge_requirements(source.requirements, extra))


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{what} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


__all__ = ["decode_package", "deploy_arguments", "package_text"]
