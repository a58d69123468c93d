"""Finding drivers, image builders and stores by name through entry points."""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

from .model import DispatchError, InvalidRequestError

log = logging.getLogger(__name__)

GROUPS = {
    "driver": "dispatch_kernel.drivers",
    "image builder": "dispatch_kernel.images",
    "store": "dispatch_kernel.stores",
}


def names(kind: str) -> list[str]:
    """The plug-in names registered for `kind` ("driver", "image builder", "store")."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUPS[kind])})


def load(kind: str, name: str) -> Any:
    """The class registered as `name`; a clear error when it is unknown or fails to load."""
    for entry_point in importlib.metadata.entry_points(group=GROUPS[kind]):
        if entry_point.name == name:
            try:
                return entry_point.load()
            except Exception as exc:  # a broken plug-in is reported, never fatal to the rest
                log.warning("the %s plug-in %r failed to load: %s", kind, name, exc)
                raise DispatchError(f"the {kind} {name!r} failed to load: {exc}") from exc
    known = ", ".join(names(kind)) or "none"
    raise InvalidRequestError(f"unknown {kind} {name!r} (available: {known})")
