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
import jsonschema_rs
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..model import InvalidRequestError

_PATH = Path(__file__).with_name("openapi.yaml")
_URI = "urn:dispatch-kernel:openapi"
_MESSAGE_LIMIT = 300  # characters of an offending value quoted in an error


# What any operation may answer since requests are authenticated and authorized by policy
# (server/base.py's prepare): added to every operation here, so that a new one cannot forget.
_EVERY_OPERATION = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound"}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The document as loaded, with the answers every operation may give (shared: do not
    modify it)."""
    import yaml

    with open(_PATH, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    for item in doc["paths"].values():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                responses = operation["responses"]
                for status, name in _EVERY_OPERATION.items():
                    responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
    return doc


def document(base_url: str = "/") -> dict[str, Any]:
    """The document with its server URL under `base_url` (what GET openapi.json answers)."""
    doc = copy.deepcopy(spec())
    doc["servers"] = [{"url": base_url.rstrip("/") + "/dispatch/v1"}]
    return doc


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource(_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))
    # References are followed once, here, not on every request: resolving them is most of
    # what validating a small body costs. A reference back into itself stays a reference.
    schema = _inline({"$ref": f"#/components/schemas/{name}"}, ())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _inline(schema: Any, expanding: tuple[str, ...]) -> Any:
    """`schema` with the document's local references replaced by what they point to."""
    if isinstance(schema, list):
        return [_inline(item, expanding) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    rest = {key: _inline(value, expanding) for key, value in schema.items() if key != "$ref"}
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return rest if ref is None else {**rest, "$ref": ref}
    if ref in expanding:
        return {**rest, "$ref": _URI + ref}
    target: Any = spec()
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    inlined = _inline(target, (*expanding, ref))
    if not rest:
        return inlined
    # Beside other keywords a reference is an in-place applicator: allOf is the same thing.
    return {**rest, "allOf": [*rest.get("allOf", []), inlined]}


@lru_cache(maxsize=None)
def _fast_validator(name: str) -> Any:
    # jsonschema-rs answers "valid?" in about 0.2 µs where jsonschema takes about 17 µs, on
    # every request; jsonschema still words the error, so messages stay the same.
    return jsonschema_rs.validator_for(_validator(name).schema)


def validate(name: str, value: Any) -> None:
    """InvalidRequestError naming the first problem when `value` is not a valid `name` schema."""
    if _fast_validator(name).is_valid(value):
        return
    found = list(_validator(name).iter_errors(value))
    if not found:  # the two disagree: jsonschema, the reference, decides
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
