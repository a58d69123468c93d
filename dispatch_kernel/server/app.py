"""DispatchApp: the Jupyter server extension that hosts one Dispatch core for the whole server.

Enabled by the file the wheel installs in etc/jupyter/jupyter_server_config.d/, so `jupyter lab`
and `jupyter server` serve REST API v1 under `{base_url}dispatch/v1/` and the routes of APIs under
`{base_url}dispatch/http/`; `jupyter dispatch` starts a server with it on its own. Its settings are traitlets (`c.DispatchApp.home = ...`).

A kernel (or terminal) started by the server finds it without being told: the extension puts
DISPATCH_URL and DISPATCH_TOKEN in the server's environment, which they inherit, and
`dispatch_kernel.connect()` uses them.

Started by JupyterHub as a service, `jupyter dispatch` serves where the hub says, knows the hub's
users and groups, and serves them Dispatch only (hub.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Int, List, Unicode, default
from traitlets.config import Config

from ..version import __version__
from ..settings import Settings
from ._identity import jupyters_own
from .base import DispatchState
from .hub import hub_identity, hub_service_config

GATEWAY = "dispatch/http"  # where the routes of APIs live under the base URL
URL_ENV = "DISPATCH_URL"
TOKEN_ENV = "DISPATCH_TOKEN"


class DispatchApp(ExtensionApp):
    """Serverless functions from Jupyter: the REST API of one shared Dispatch core."""

    name = "dispatch"
    description = "Serve dispatch-kernel's REST API (functions, runs, secrets) from a Jupyter server"
    version = __version__
    extension_url = "/dispatch/v1/openapi.json"
    load_other_extensions = True

    home = Unicode(
        "", config=True,
        help="Where the core keeps its database, environments and keys "
             "(default: DISPATCH_HOME, else the user data directory).",
    )
    store = Unicode(config=True,
                    help="The store plug-in (entry point dispatch_kernel.stores): sqlite, the embedded "
                         'default, or postgres (with plugin_options["postgres"]["dsn"]) shared by several '
                         "servers; or a postgresql:// URL. Default: DISPATCH_STORE_URL, else sqlite.")
    driver = Unicode("local", config=True, help="The default driver (entry point dispatch_kernel.drivers).")
    images = Unicode("venv", config=True, help="The image builder (entry point dispatch_kernel.images).")
    org = Unicode("default", config=True,
                  help="The organization of requests that name none (X-Dispatch-Org header, client's org=).")
    owner = Unicode(config=True,
                    help="The subject of whoever holds the server's token (or password) when the server "
                         "uses Jupyter's own authentication; default: the user running the server. "
                         "A server whose users sign in through JupyterHub has none by default (a hub "
                         "user's own server: that user), as the process's user is none of them.")
    bootstrap_admins = List(Unicode(), config=True,
                            help="Subjects (users, group:NAME) made administrators of the default "
                                 "organization, beside the owner, when the store is new.")
    bus = Unicode("sqlite", config=True,
                  help="The event bus plug-in (entry point dispatch_kernel.buses): sqlite, the embedded "
                       "default, or nats (JetStream, shared by several servers).")
    plugin_options = Dict(config=True,
                          help="Options of each plug-in, by its name, e.g. "
                               '{"nats": {"url": "nats://127.0.0.1:4222"}, "oci": {"registry": "127.0.0.1:5000"}, '
                               '"container": {"docker_host": "unix:///run/podman/podman.sock"}}.')
    run_threads = Int(64, config=True, help="Threads that carry runs started without waiting.")
    request_threads = Int(64, config=True,
                          help="Threads that carry the core's blocking calls for requests "
                               "(a POST runs with wait holds one for the whole run).")
    max_body_size = Int(6 * 1024 * 1024, config=True,
                        help="Largest request body in bytes; larger ones are answered 413.")
    export_env = Bool(True, config=True,
                      help=f"Put {URL_ENV} and {TOKEN_ENV} in the server's environment so that "
                           "kernels and terminals it starts find this server.")

    @classmethod
    def get_extension_package(cls) -> str:
        # The extension points live in this subpackage: `import dispatch_kernel` stays light.
        return "dispatch_kernel.server"

    @default("store")
    def _default_store(self) -> str:
        from ..settings import default_store

        return default_store()

    @classmethod
    def make_serverapp(cls, **kwargs):
        """The server of `jupyter dispatch`; started by JupyterHub as a service, configured from
        the hub's environment first (config files and the command line still override it)."""
        serverapp = super().make_serverapp(**kwargs)
        hub = hub_service_config()
        if hub is not None:
            serverapp.update_config(Config({"ServerApp": hub}))
        return serverapp

    @default("owner")
    def _default_owner(self) -> str:
        from ..model import actor

        provider = getattr(self.serverapp, "identity_provider", None)
        if provider is not None and not jupyters_own(provider):
            # Users sign in through the hub: a hub user named like the process's user must not
            # become an administrator by that name.
            return os.environ.get("JUPYTERHUB_USER", "")
        return actor()  # outside a request: the user running this process

    @default("open_browser")
    def _default_open_browser(self) -> bool:
        return False  # an API server: nothing to show in a browser yet

    def initialize_settings(self) -> None:
        from ..core import Dispatch

        # isolated: the server stores and forwards what clients send, and never loads it.
        options = {"store": self.store, "driver": self.driver, "images": self.images, "org": self.org,
                   "run_threads": self.run_threads, "bus": self.bus,
                   "plugin_options": dict(self.plugin_options), "isolated": True}
        settings = Settings(home=Path(self.home), **options) if self.home else Settings(**options)
        from ..secrets import WrongKeyError

        try:
            core = Dispatch(settings)
        except WrongKeyError as exc:
            # Jupyter would log a failed extension and serve on without it; a server that
            # shares a store with another key must not run at all.
            self.log.critical("dispatch: %s", exc)
            raise SystemExit(f"dispatch: {exc}") from None
        admins = [name for name in (self.owner, *self.bootstrap_admins) if name]
        if not admins:
            core.close()
            message = ("the server's users sign in through JupyterHub: name Dispatch's administrators "
                       "with c.DispatchApp.bootstrap_admins (hub users or group:NAME)")
            self.log.critical("dispatch: %s", message)
            raise SystemExit(f"dispatch: {message}")
        if core.identity.bootstrap(admins):
            self.log.info("dispatch: organization %r created; administrators: %s", self.org, ", ".join(admins))
        # The API's handlers log through a child of the server's logger whose level is the
        # server's log_level. traitlets sets the server's logger itself to DEBUG (its handlers
        # filter), so every answered request would build a debug access-log record that no
        # handler prints: about 35 µs of the event loop's time per request.
        log = logging.getLogger(f"{self.serverapp.log.name}.dispatch")
        log.setLevel(self.serverapp.log_level)
        self.state = DispatchState(core, org=self.org, max_body_size=self.max_body_size,
                                   threads=self.request_threads, log=log, owner=self.owner)
        self.settings["dispatch_kernel"] = self.state
        if hub_identity(self.serverapp.identity_provider):
            # Tornado checks XSRF before a handler knows that a request carries a hub token,
            # and the hub's check then refuses it; Jupyter's own check, after authentication,
            # still applies (as in JupyterHub's single-user servers).
            self.settings["xsrf_cookies"] = False  # the server's settings are updated from these
        self.gateway = self._gateway(core)
        self._saved_env: dict[str, str | None] = {}
        if self.export_env:
            self._export_env()
        self.log.info("dispatch: REST API v1 at %sdispatch/v1/, API routes at %s%s/ (home %s)",
                      self.serverapp.base_url, self.serverapp.base_url, GATEWAY, settings.home)

    def _gateway(self, core):
        """The API gateway of this server: routes under {base_url}dispatch/http/, whose `auth:
        token` APIs accept the server's own token (as its owner) and service accounts' JWTs,
        as their policies allow."""
        from ..gateway.auth import authorized_callers
        from ..gateway.service import Gateway

        provider = self.serverapp.identity_provider
        # The token is final only once the server runs: read it on each call. A hub's token is
        # the service's own credential towards the hub, not a user's.
        own = jupyters_own(provider)
        accepts = authorized_callers(core.identity, lambda: [provider.token] if own else [], self.owner)
        return Gateway(core, org=self.org, max_body_size=self.max_body_size, credentials=accepts,
                       runs_url=url_path_join(self.serverapp.base_url, "dispatch/v1/runs/"))

    def initialize_handlers(self) -> None:
        from ..gateway.handler import GatewayHandler
        from .routes import routes

        self.handlers.extend(routes())
        prefix = url_path_join(self.serverapp.base_url, GATEWAY + "/")
        self.handlers.append((GATEWAY + "/.*", GatewayHandler, {"gateway": self.gateway, "prefix": prefix}))

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        if self.export_env:
            self._export_env()  # the port is final only once the server listens

    def _export_env(self) -> None:
        values = {URL_ENV: self.serverapp.connection_url, TOKEN_ENV: self.serverapp.identity_provider.token}
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            if value:
                os.environ[key] = value
            else:
                os.environ.pop(key, None)

    async def stop_extension(self) -> None:
        """Close the event streams, then the core (its workers end) off the event loop."""
        state = getattr(self, "state", None)
        if state is None:
            return
        state.hub.close_all()
        self.gateway.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, state.core.close)
        state.executor.shutdown(wait=False, cancel_futures=True)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}


main = launch_new_instance = DispatchApp.launch_instance
