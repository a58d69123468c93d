"""Plug-ins found by name through entry points: one loader for every group.

    load("driver", "local")        # the class registered in group dispatch_kernel.drivers

Another package adds a plug-in by declaring an entry point in one of the groups below, as
jupyter_client's kernel provisioners are found; nothing in this repository changes. A plug-in
that fails to load is reported (a warning, and a DispatchError for whoever asked for it) and
never stops the others. Each plug-in reads its own options from
`Settings.plugin_options[its name]`.

The test seam: `registered(kind, name, cls)` makes a class loadable under a name for the length
of a `with` block, as if an installed package declared it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Generic, TypeVar

from .model import DispatchError, InvalidRequestError

log = logging.getLogger(__name__)

GROUPS = {
    "driver": "dispatch_kernel.drivers",
    "image builder": "dispatch_kernel.images",
    "store": "dispatch_kernel.stores",
    "bus": "dispatch_kernel.buses",
    "event source": "dispatch_kernel.event_sources",
}

# The plug-ins this package declares in its own pyproject.toml, loaded without reading any
# distribution's metadata: importing importlib.metadata and scanning every installed
# distribution's entry points cost about 40 ms of a fresh process's first deploy.
# tests/test_plugins.py checks that this table and our entry points agree.
BUILTINS: dict[tuple[str, str], str] = {
    ("driver", "local"): "dispatch_kernel.drivers.local:LocalDriver",
    ("driver", "container"): "dispatch_kernel.drivers.container:ContainerDriver",
    ("driver", "kubernetes"): "dispatch_kernel.drivers.kubernetes:KubernetesDriver",
    ("driver", "openfaas"): "dispatch_kernel.drivers.openfaas:OpenFaasDriver",
    ("image builder", "venv"): "dispatch_kernel.images.venv:VenvBuilder",
    ("image builder", "oci"): "dispatch_kernel.images.oci:OciBuilder",
    ("store", "sqlite"): "dispatch_kernel.store.sqlite:SqliteStore",
    ("store", "postgres"): "dispatch_kernel.store.postgres:PostgresStore",
    ("bus", "sqlite"): "dispatch_kernel.events.bus.sqlite:SqliteBus",
    ("bus", "nats"): "dispatch_kernel.events.bus.nats:NatsBus",
    ("event source", "schedule"): "dispatch_kernel.events.sources.schedule:ScheduleSource",
    ("event source", "webhook"): "dispatch_kernel.events.sources.webhook:WebhookSource",
    ("event source", "vcenter"): "dispatch_kernel.events.sources.vcenter:VcenterSource",
}

_registered: dict[tuple[str, str], Any] = {}


def _group(kind: str) -> str:
    try:
        return GROUPS[kind]
    except KeyError:
        raise ValueError(f"no plug-in kind {kind!r} (one of {', '.join(GROUPS)})") from None


def names(kind: str) -> list[str]:
    """The plug-in names registered for `kind` (one of GROUPS' keys)."""
    import importlib.metadata

    found = {ep.name for ep in importlib.metadata.entry_points(group=_group(kind))}
    found |= {name for k, name in BUILTINS if k == kind}
    return sorted(found | {name for k, name in _registered if k == kind})


def load(kind: str, name: str) -> Any:
    """The class registered as `name`; a clear error when it is unknown or fails to load."""
    group = _group(kind)
    if (kind, name) in _registered:
        return _registered[(kind, name)]
    builtin = BUILTINS.get((kind, name))
    if builtin is not None:
        return _load_reference(kind, name, builtin, _import_reference)
    import importlib.metadata

    for entry_point in importlib.metadata.entry_points(group=group, name=name):
        return _load_reference(kind, name, entry_point.value, lambda _value: entry_point.load())
    known = ", ".join(names(kind)) or "none"
    raise InvalidRequestError(f"unknown {kind} {name!r} (available: {known})")


def _import_reference(value: str) -> Any:
    """The object an entry point's value (`module:attribute`) names."""
    from importlib import import_module

    module, _, attribute = value.partition(":")
    found: Any = import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _load_reference(kind: str, name: str, value: str, loader: Callable[[str], Any]) -> Any:
    try:
        return loader(value)
    except Exception as exc:  # a broken plug-in is reported, never fatal to the rest
        log.warning("the %s plug-in %r (%s) failed to load: %s", kind, name, value, exc)
        raise DispatchError(f"the {kind} {name!r} failed to load: {exc}") from exc


@contextmanager
def registered(kind: str, name: str, cls: Any) -> Iterator[None]:
    """Make `cls` the plug-in `name` of `kind` inside the block (for tests)."""
    _group(kind)
    key = (kind, name)
    before = _registered.get(key)
    _registered[key] = cls
    try:
        yield
    finally:
        if before is None:
            _registered.pop(key, None)
        else:
            _registered[key] = before


Plugin = TypeVar("Plugin")


class Loaded(Generic[Plugin]):
    """Plug-ins of one kind made on first use, one instance per name, closed together.

    `make(cls)` builds an instance from the loaded class (usually `cls(settings)`).
    """

    def __init__(self, kind: str, make: Callable[[Any], Plugin]) -> None:
        self.kind = kind
        self._make = make
        self._instances: dict[str, Plugin] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, name: str) -> Plugin:
        """The instance called `name`, loaded and made the first time it is asked for."""
        instance = self._instances.get(name)
        if instance is not None:
            return instance
        with self._lock:
            if self._closed:
                raise DispatchError(f"the {self.kind} plug-ins are closed")
            instance = self._instances.get(name)
            if instance is None:
                instance = self._instances[name] = self._make(load(self.kind, name))
            return instance

    def made(self) -> list[Plugin]:
        """The instances made so far (waits for one being made)."""
        with self._lock:
            return list(self._instances.values())

    def close(self) -> None:
        """Close every instance made (each plug-in's own close()); none is made after this."""
        with self._lock:
            self._closed = True
            instances, self._instances = list(self._instances.values()), {}
        for instance in instances:
            try:
                instance.close()  # type: ignore[attr-defined]
            except Exception:  # one plug-in's failure to close never keeps the others open
                log.exception("closing the %s plug-in %r failed", self.kind, instance)


__all__ = ["BUILTINS", "GROUPS", "Loaded", "load", "names", "registered"]
