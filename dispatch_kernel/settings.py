"""Settings: everything a Dispatch core is built from, with defaults for the embedded mode."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .home import HOME_ENV as HOME_ENV
from .home import default_home as default_home
from .home import resolve_home
from .model import DEFAULT_ORG, InvalidRequestError

STORE_ENV = "DISPATCH_STORE_URL"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def default_store() -> str:
    """DISPATCH_STORE_URL if set (postgresql://...), else "sqlite"."""
    return os.environ.get(STORE_ENV) or "sqlite"


@dataclass
class Settings:
    """How to build a Dispatch core. Plug-ins are chosen by their entry-point names, and each
    reads its own options from `plugin_options[name]`, e.g.

        Settings(driver="container", plugin_options={
            "oci": {"registry": "127.0.0.1:5000"},
            "container": {"docker_host": "unix:///run/podman/podman.sock"},
            "nats": {"url": "nats://127.0.0.1:4222"}})
    """

    home: Path = field(default_factory=default_home)
    # A plug-in name, or a URL: postgresql://... is the postgres store with that DSN.
    store: str = field(default_factory=default_store)
    driver: str = "local"
    images: str = "venv"
    bus: str = "sqlite"  # the event bus plug-in (entry point group dispatch_kernel.buses)
    org: str = DEFAULT_ORG
    run_threads: int = 64  # threads that carry non-blocking runs and map() chunks
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A core that serves other people (the Jupyter server extension) loads nothing they send:
    # workers send outputs as JSON instead of pickles, so no user code is ever unpickled here.
    isolated: bool = False
    # Start the event manager by itself when the home has events; a standalone API gateway
    # (which serves routes and nothing else) does not.
    events: bool = True

    def __post_init__(self) -> None:
        self.home = resolve_home(self.home)
        for name, options in self.plugin_options.items():
            if not isinstance(options, dict):
                raise InvalidRequestError(f"plugin_options[{name!r}] must be a dict of options")
        if self.store.startswith(_POSTGRES_SCHEMES):
            self.plugin_options = {**self.plugin_options,
                                   "postgres": {**self.options("postgres"), "dsn": self.store}}
            self.store = "postgres"
        elif "://" in self.store:
            raise InvalidRequestError(f"unknown store URL {self.store.split('://')[0]}://... "
                                      "(a store is a plug-in name such as sqlite, or postgresql://...)")

    def options(self, plugin: str) -> dict[str, Any]:
        """The options of the plug-in called `plugin` (empty when none are set)."""
        return self.plugin_options.get(plugin) or {}
