"""connect(): the one way in, to a server or to the embedded default."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: see dispatch_kernel/__init__.py
if TYPE_CHECKING:
    from pathlib import Path

    from ._http import HttpClient
    from ._local import LocalClient
    from .settings import Settings


def token_from_env() -> str | None:
    """The credential for the server DISPATCH_URL names: DISPATCH_TOKEN, else (in a JupyterHub
    user's server, whose hub points DISPATCH_URL at a Dispatch hub service) the server's own
    JUPYTERHUB_API_TOKEN, by which the service knows the user."""
    return os.environ.get("DISPATCH_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN") or None


def connect(url: str | None = None, *, token: str | None = None, home: str | Path | None = None,
            settings: Settings | None = None, org: str | None = None,
            store: str | None = None) -> LocalClient | HttpClient:
    """A client on the Dispatch server at `url`, or on the embedded default.

    With a URL (a Jupyter server's, base URL included) the client speaks REST with `token`.
    `org` is the organization to work in (the X-Dispatch-Org header of a server client).
    Without one, DISPATCH_URL and DISPATCH_TOKEN are used when set and neither `home` nor
    `settings` is given: a kernel started by a server with the dispatch extension finds it so.
    In a JupyterHub user's server whose hub sets DISPATCH_URL to a Dispatch hub service (and
    no DISPATCH_TOKEN), the server's own JUPYTERHUB_API_TOKEN is the credential: the service
    knows the user by it.
    Otherwise the embedded default: a Dispatch core in this process, whose home (database,
    environments, keys) is `home`, else DISPATCH_HOME, else the platform's user data directory;
    `store` picks its store: a plug-in name, or postgresql://... for a PostgreSQL database that
    servers of a team share (default: DISPATCH_STORE_URL, else the home's SQLite file).
    """
    if url is None and home is None and settings is None and os.environ.get("DISPATCH_URL"):
        url = os.environ["DISPATCH_URL"]
        token = token or token_from_env()
    if url is not None:
        if home is not None or settings is not None or store is not None:
            raise TypeError("connect(url) talks to a server: home, settings and store are the server's")
        from ._http import HttpClient  # the HTTP stack is paid for only by who talks REST

        return HttpClient(url, token, org=org)

    if settings is not None and store is not None:
        raise TypeError("connect(settings=...) takes the store from the settings")
    fork_server = None
    if settings is None:
        # The default settings run functions in this interpreter's fork server: start it
        # before importing the core, so that its start-up overlaps the imports and the store.
        from .home import home_directory
        from .runtime.forkserver import start_for_host

        home = home_directory(home)
        fork_server = start_for_host(home)
    try:
        from ._local import LocalClient
        from .core import Dispatch
        from .settings import Settings

        if settings is None:
            settings = Settings(home=home) if store is None else Settings(home=home, store=store)
        return LocalClient(Dispatch(settings, fork_server=fork_server), org)
    except BaseException:
        if fork_server is not None:  # Dispatch() failed before the driver took it, or never ran
            fork_server.close()
        raise


__all__ = ["connect", "token_from_env"]
