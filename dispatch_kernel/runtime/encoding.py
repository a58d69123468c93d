"""JSON for values that JSON cannot always carry: a run's input and output.

Workers encode outputs with it (when their host asks for JSON) and the host encodes run
records, so a value is described the same way wherever it is written. Only the standard
library is used: this module runs inside a function's environment and its image.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

try:
    from _json import make_encoder as _make_c_encoder
except ImportError:  # pragma: no cover - CPython always has it
    _make_c_encoder = None


def describe_python_value(value: Any) -> dict[str, str]:
    """The JSON stand-in for a value JSON cannot carry: its type and a bounded repr."""
    text = repr(value)
    if len(text) > 1000:
        text = text[:997] + "..."
    return {"$python": f"{type(value).__module__}.{type(value).__qualname__}", "repr": text}


def _encoder(allow_nan: bool) -> Callable[[Any], str]:
    """A function that writes compact JSON, describing values JSON cannot carry.

    JSONEncoder.encode builds a C encoder anew on every call, with a dict of the containers it
    is inside so as to refuse one that holds itself; run records are encoded several times per
    run, so the C encoder is built once here, without that dict. A container that holds itself
    then meets Python's recursion limit instead, and dumps() describes it like any other value
    JSON cannot carry.
    """
    options = {"default": describe_python_value, "separators": (",", ":"), "allow_nan": allow_nan}
    if _make_c_encoder is None:  # an interpreter without the C accelerator
        encoder = json.JSONEncoder(**options, check_circular=False)
        return encoder.encode
    c_encoder = _make_c_encoder(None, describe_python_value, json.encoder.encode_basestring_ascii, None,
                                ":", ",", False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(c_encoder(value, 0))

    return encode


_encode = _encoder(allow_nan=True)
_strict_encode = _encoder(allow_nan=False)
# What a value JSON cannot carry whole raises: a key it cannot write (TypeError), NaN when
# strict (ValueError), a container that holds itself (RecursionError).
_UNCARRIED = (TypeError, ValueError, RecursionError)


def dumps(value: Any) -> str:
    """JSON text of `value`, describing (not failing on) parts that JSON cannot carry."""
    try:
        return _encode(value)
    except _UNCARRIED:  # rare: a container that holds itself, a key JSON cannot carry
        return _encode(_carried(value, set(), strict=False))


def strict_dumps(value: Any) -> str:
    """dumps() for other programs: text any JSON parser accepts. NaN and the infinities,
    which Python writes as bare NaN and Infinity, are described like other values JSON
    cannot carry, and so is a container that holds itself or a dict with keys JSON cannot
    carry."""
    try:
        return _strict_encode(value)
    except _UNCARRIED:  # rare: look for what it was the slow way
        return _strict_encode(_carried(value, set(), strict=True))


_KEY_TYPES = (str, int, float, bool, type(None))  # what json writes as an object's key


def _carried(value: Any, path: set[int], *, strict: bool) -> Any:
    """`value` with what JSON cannot carry replaced by its description: a container that
    holds itself, a dict with a key that is no string, number, bool or null, and (strict) NaN
    and the infinities."""
    if strict and isinstance(value, float) and not math.isfinite(value):
        return describe_python_value(value)
    if isinstance(value, (dict, list, tuple)):
        if id(value) in path:
            return describe_python_value(value)
        if isinstance(value, dict) and not all(isinstance(key, _KEY_TYPES) for key in value):
            return describe_python_value(value)
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return {key: _carried(item, path, strict=strict) for key, item in value.items()}
            return [_carried(item, path, strict=strict) for item in value]
        finally:
            path.discard(id(value))
    return value


__all__ = ["describe_python_value", "dumps", "strict_dumps"]
