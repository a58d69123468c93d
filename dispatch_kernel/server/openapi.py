"""The OpenAPI document of REST API v1 (openapi.yaml beside this file) and request validation.

Request bodies are checked against the document's own schemas, so what the document promises
and what the server accepts cannot drift apart, and a body of the wrong shape is a 400 that
names the field before any handler code looks at it.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..model import InvalidRequestError

_PATH = Path(__file__).with_name("openapi.yaml")
_URI = "urn:dispatch-kernel:openapi"
_MESSAGE_LIMIT = 300  # characters of an offending value quoted in an error


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The document as loaded (shared: do not modify it)."""
    import yaml

    with open(_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def document(base_url: str = "/") -> dict[str, Any]:
    """The document with its server URL under `base_url` (what GET openapi.json answers)."""
    doc = copy.deepcopy(spec())
    doc["servers"] = [{"url": base_url.rstrip("/") + "/dispatch/v1"}]
    return doc


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource(_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{name}"}, registry=registry)


def validate(name: str, value: Any) -> None:
    """InvalidRequestError naming the first problem when `value` is not a valid `name` schema."""
    found = list(_validator(name).iter_errors(value))
    if not found:
        return
    # A field of the wrong type also leaves it "unevaluated": name the field, not that.
    specific = [e for e in found if e.validator != "unevaluatedProperties"] or found
    error = jsonschema.exceptions.best_match(specific)
    message = error.message
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "..."
    where = error.json_path if error.json_path != "$" else "the body"
    raise InvalidRequestError(f"{where}: {message}")


def errors(name: str, value: Any) -> list[str]:
    """Every problem with `value` as a `name` schema (for tests that check responses)."""
    return [f"{e.json_path}: {e.message}" for e in _validator(name).iter_errors(value)]


__all__ = ["document", "errors", "spec", "validate"]
