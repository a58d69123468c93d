"""The webhook source: an HTTP endpoint per source that turns POSTed CloudEvents or JSON into events.

A request is authenticated by the source's own token (`Authorization: Bearer <token>` or
`X-Dispatch-Token`), shown once when the source is created and stored only as a SHA-256 hash, so
a service elsewhere (a Git host, a monitoring system) can call it without a Jupyter login.
Bodies are CloudEvents in structured or binary content mode, or plain JSON, which becomes an
event of the configured `event_type` (default `webhook.received`). A malformed body is a 400 and
emits nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as secrets_module
from typing import Any, Mapping

from ...entities import EventSource
from ...model import DispatchError, InvalidRequestError
from ..cloudevent import from_http
from .base import EventSourceDriver, sleep_forever

DEFAULT_TYPE = "webhook.received"


class UnauthenticatedError(DispatchError):
    """The request carries no valid token for this webhook."""

    code = 401


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebhookSource(EventSourceDriver):
    """Answers POSTs (the server's events handlers call `EventManager.receive`); no task of its own."""

    @staticmethod
    def refusal(name: str) -> str:
        """What a request without the right token is told (the same whether `name` exists)."""
        return f"the webhook {name!r} needs its token (Authorization: Bearer <token>)"

    @classmethod
    def check_config(cls, config: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
        token = config.get("token") or secrets_module.token_urlsafe(24)
        if not isinstance(token, str) or len(token) < 16:
            raise InvalidRequestError("a webhook token must be a string of at least 16 characters")
        event_type = config.get("event_type", DEFAULT_TYPE)
        if not isinstance(event_type, str) or not event_type:
            raise InvalidRequestError("event_type must be a non-empty string")
        out = {k: v for k, v in config.items() if k != "token"}
        out.update({"event_type": event_type, "token_sha256": _digest(token), "!token": token})
        return out

    @staticmethod
    def authenticate(source: EventSource, headers: Mapping[str, str]) -> None:
        """UnauthenticatedError unless the headers carry the source's token."""
        lowered = {k.lower(): v for k, v in headers.items()}
        token = lowered.get("x-dispatch-token", "")
        authorization = lowered.get("authorization", "")
        if not token and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        expected = source.config.get("token_sha256", "")
        if not token or not expected or not hmac.compare_digest(_digest(token), expected):
            raise UnauthenticatedError(WebhookSource.refusal(source.name))

    @classmethod
    def to_event(cls, source: EventSource, headers: Mapping[str, str], body: bytes,
                 authenticated: bool = False) -> dict[str, Any]:
        """The event a request to the webhook carries; 401 without the token, 400 for a bad body.
        `authenticated`: the caller was already authenticated otherwise (a Jupyter user)."""
        if not authenticated:
            cls.authenticate(source, headers)
        return from_http(headers, body, default_source=f"dispatch/webhook/{source.name}",
                         default_type=source.config.get("event_type", DEFAULT_TYPE))

    async def run(self) -> None:
        await sleep_forever()
