"""connect(): the one way in, to a server or to the embedded default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._http import HttpClient
from ._local import LocalClient

if TYPE_CHECKING:
    from .settings import Settings


def connect(url: str | None = None, *, token: str | None = None, home: str | Path | None = None,
            settings: Settings | None = None, org: str | None = None) -> LocalClient | HttpClient:
    """A client on the Dispatch server at `url`, or on the embedded default.

    With a URL (a Jupyter server's, base URL included) the client speaks REST with `token`.
    `org` is the organization to work in (the X-Dispatch-Org header of a server client).
    Without one, DISPATCH_URL and DISPATCH_TOKEN are used when set and neither `home` nor
    `settings` is given: a kernel started by a server with the dispatch extension finds it so.
    Otherwise the embedded default: a Dispatch core in this process, whose home (database,
    environments, keys) is `home`, else DISPATCH_HOME, else the platform's user data directory.
    """
    if url is None and home is None and settings is None and os.environ.get("DISPATCH_URL"):
        url = os.environ["DISPATCH_URL"]
        token = token or os.environ.get("DISPATCH_TOKEN") or None
    if url is not None:
        if home is not None or settings is not None:
            raise TypeError("connect(url) talks to a server: home and settings are the server's")
        return HttpClient(url, token, org=org)

    from .core import Dispatch
    from .settings import Settings

    if settings is None:
        settings = Settings(home=home) if home is not None else Settings()
    return LocalClient(Dispatch(settings), org)


__all__ = ["connect"]
