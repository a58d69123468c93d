"""JSON for values that JSON cannot always carry: a run's input and output.

Workers encode outputs with it (when their host asks for JSON) and the host encodes run
records, so a value is described the same way wherever it is written. Only the standard
library is used: this module runs inside a function's environment and its image.
"""

from __future__ import annotations

import json
import math
from typing import Any


def describe_python_value(value: Any) -> dict[str, str]:
    """The JSON stand-in for a value JSON cannot carry: its type and a bounded repr."""
    text = repr(value)
    if len(text) > 1000:
        text = text[:997] + "..."
    return {"$python": f"{type(value).__module__}.{type(value).__qualname__}", "repr": text}


# One encoder for every call: json.dumps with options builds a new one each time, and run
# records are encoded several times per run.
_ENCODER = json.JSONEncoder(default=describe_python_value, separators=(",", ":"))


def dumps(value: Any) -> str:
    """JSON text of `value`, describing (not failing on) parts that JSON cannot carry."""
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError):  # rare: a container that holds itself, a key JSON cannot carry
        return _ENCODER.encode(_carried(value, set(), strict=False))


_STRICT_ENCODER = json.JSONEncoder(default=describe_python_value, separators=(",", ":"), allow_nan=False)


def strict_dumps(value: Any) -> str:
    """dumps() for other programs: text any JSON parser accepts. NaN and the infinities,
    which Python writes as bare NaN and Infinity, are described like other values JSON
    cannot carry, and so is a container that holds itself or a dict with keys JSON cannot
    carry."""
    try:
        return _STRICT_ENCODER.encode(value)
    except (TypeError, ValueError):  # rare: look for what it was the slow way
        return _STRICT_ENCODER.encode(_carried(value, set(), strict=True))


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
