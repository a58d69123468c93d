"""The URL routes of REST API v1, made from the paths the handlers serve.

Each handler names the OpenAPI path it serves (`DispatchHandler.path`, as the document writes
it: `functions/{name}`); its URL pattern under `{base_url}dispatch/v1/` is made from that, so the
handlers, the routes and the document cannot drift apart (tests/server/test_routes.py checks
that the document and the handlers name the same paths and methods).
"""

from __future__ import annotations

import re
from typing import Any

from tornado import web

from . import apis, events, functions, iam, images, runs, secrets
from .base import API, DispatchHandler, NotFoundHandler, OpenApiHandler

HANDLERS: list[type[DispatchHandler]] = [
    *functions.HANDLERS, *runs.HANDLERS, *secrets.HANDLERS, *images.HANDLERS, *events.HANDLERS, *apis.HANDLERS,
    *iam.HANDLERS,
    OpenApiHandler,
]
_METHODS = ("get", "post", "put", "patch", "delete")


def pattern(path: str) -> str:
    """The tornado URL pattern of an OpenAPI path: each `{parameter}` one path segment, and a
    collection (a path that ends in a name) with or without a trailing slash."""
    regex = re.sub(r"\{[^}/]+\}", "([^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
    return f"{API}/{regex}" + ("" if path.endswith("}") or "." in path else "/?")


def methods(handler: type[DispatchHandler]) -> set[str]:
    """The HTTP methods `handler` implements itself (lower case)."""
    return {m for m in _METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)}


def routes() -> list[tuple[str, type, dict[str, Any]]]:
    """URL patterns (under base_url, which the ExtensionApp prepends) and their handlers: fixed
    paths before templated ones (runs/stream before runs/{id}), and a JSON 404 for the rest."""
    ordered = sorted(HANDLERS, key=lambda h: ("{" in h.path, h.path.count("/"), h.path))
    return [(pattern(h.path), h, {}) for h in ordered] + [(f"{API}/(.*)", NotFoundHandler, {})]


__all__ = ["HANDLERS", "methods", "pattern", "routes"]
