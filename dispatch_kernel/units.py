"""Durations and sizes as people write them: "500ms", "30s", "5m"; "512M", "2Gi"."""

from __future__ import annotations

import re

from .model import InvalidRequestError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds from a number (seconds) or text such as "500ms", "30s", "5m", "1h"."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise InvalidRequestError(f"not a duration: {value!r} (try 500ms, 30s or 5m)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidRequestError(f"a duration must be positive, not {value!r}")
    return seconds


def parse_size(value: str | int | None) -> int | None:
    """Bytes from a number (bytes) or text such as "512M", "2Gi", "64KB" (binary units)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise InvalidRequestError(f"not a size: {value!r} (try 512M or 2G)")
        unit = (match.group(2) or "")[:1].upper()
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise InvalidRequestError(f"a size must be positive, not {value!r}")
    return size
