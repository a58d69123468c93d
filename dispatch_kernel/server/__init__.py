"""The Jupyter server extension: one Dispatch core for everyone who uses the server, REST API v1.

Importing this package imports nothing of Jupyter: the server finds the extension point below
and loads `app` only when it starts the extension.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import DispatchApp

    return [{"module": "dispatch_kernel.server", "app": DispatchApp}]
