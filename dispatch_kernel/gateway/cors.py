"""CORS per API: preflight answers and the headers of actual responses, from the API's `cors`
(False: no CORS headers at all; True: any origin; or {origins, headers, max_age})."""

from __future__ import annotations

from typing import Any

from ..entities import Api

EXPOSED = "X-Dispatch-Run"  # what a page may read of an answer beyond the simple headers


def _settings(api: Api) -> dict[str, Any] | None:
    cors = api.cors
    if not cors:
        return None
    if cors is True:
        return {"origins": ["*"], "headers": None, "max_age": 600}
    return cors


def allowed_origin(api: Api, origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for `origin` on `api`, or None (no CORS)."""
    settings = _settings(api)
    if settings is None or not origin:
        return None
    origins = settings.get("origins") or ["*"]
    if "*" in origins:
        return "*"
    return origin if origin.lower() in origins else None


def response_headers(api: Api, origin: str | None) -> list[tuple[str, str]]:
    """CORS headers for an actual (not preflight) response."""
    allowed = allowed_origin(api, origin)
    if allowed is None:
        return []
    headers = [("Access-Control-Allow-Origin", allowed), ("Access-Control-Expose-Headers", EXPOSED)]
    if allowed != "*":
        headers.append(("Vary", "Origin"))
    return headers


def preflight_headers(api: Api, origin: str | None, methods: list[str],
                      requested_headers: str | None) -> list[tuple[str, str]] | None:
    """The headers of a 204 preflight answer, or None when `origin` may not call `api`."""
    allowed = allowed_origin(api, origin)
    if allowed is None:
        return None
    settings = _settings(api) or {}
    listed = settings.get("headers")
    headers_value = ", ".join(listed) if listed is not None else (requested_headers or "")
    headers = [("Access-Control-Allow-Origin", allowed), ("Access-Control-Allow-Methods", ", ".join(methods)),
               ("Access-Control-Max-Age", str(settings.get("max_age", 600)))]
    if headers_value:
        headers.append(("Access-Control-Allow-Headers", headers_value))
    if allowed != "*":
        headers.append(("Vary", "Origin"))
    return headers


__all__ = ["allowed_origin", "preflight_headers", "response_headers"]
