"""Who may call an `auth: token` API: the one credential check, kept apart so that identity
(service accounts and their JWTs) can replace it without touching the gateway.

Today a route accepts the server's own token as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Callable

CredentialCheck = Callable[["str | None"], bool]
"""Given the Authorization header (or None), whether the caller may call a token API."""


def bearer_tokens(tokens: Iterable[str]) -> CredentialCheck:
    """A check that accepts `Authorization: Bearer T` for any non-empty T of `tokens`."""
    accepted = [token.encode() for token in tokens if token]

    def check(authorization: str | None) -> bool:
        if not authorization or not accepted:
            return False
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return False
        given = credential.strip().encode()
        found = False
        for token in accepted:  # every token compared, in constant time each
            found |= hmac.compare_digest(given, token)
        return found

    return check


__all__ = ["CredentialCheck", "bearer_tokens"]
