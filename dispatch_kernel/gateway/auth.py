"""Who may call an `auth: token` API: the one credential check of the gateway.

A route accepts `Authorization: Bearer <credential>` where the credential is
- one of the gateway's own tokens (the Jupyter server's token, or `dispatch gateway --token`):
  its holder is the server's owner, whose policies are checked like anyone's when the owner
  is named (the Jupyter extension), or who may call every route (the standalone gateway);
- a service account's JWT (identity/tokens.py): verified with the account's public key; the
  account must belong to the API's organization and be allowed `invoke` on the function.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

from ..entities import Api
from ..identity.policies import Principal
from ..identity.tokens import looks_like_jwt
from ..model import UnauthorizedError

if TYPE_CHECKING:
    from ..identity.manager import IdentityManager

CredentialCheck = Callable[["str | None", Api], None]
"""Given the Authorization header (or None) and the API called: returns when the caller may
call it; raises UnauthorizedError (401), ForbiddenError (403) or NotFoundError (the caller's
organization is not the API's: answered as a route that does not exist)."""


def _bearer(authorization: str | None) -> str:
    scheme, _, credential = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthorizedError("this route needs a credential: Authorization: Bearer <token>")
    return credential.strip()


def _matches(given: str, accepted: list[bytes]) -> bool:
    found = False
    for token in accepted:  # every token compared, in constant time each
        found |= hmac.compare_digest(given.encode(), token)
    return found


def bearer_tokens(tokens: Iterable[str]) -> CredentialCheck:
    """A check that accepts `Authorization: Bearer T` for any non-empty T of `tokens`."""
    accepted = [token.encode() for token in tokens if token]

    def check(authorization: str | None, api: Api | None = None) -> None:
        if not accepted or not _matches(_bearer(authorization), accepted):
            raise UnauthorizedError("this route needs a credential: Authorization: Bearer <token>")

    return check


def authorized_callers(identity: IdentityManager, tokens: Callable[[], Iterable[str]],
                       owner: str | None) -> CredentialCheck:
    """A check that accepts the gateway's own `tokens()` (as `owner`, whose policies must allow
    `invoke` on the function; with no owner, always) and service accounts' JWTs (their
    policies must allow it)."""

    def check(authorization: str | None, api: Api) -> None:
        credential = _bearer(authorization)
        if looks_like_jwt(credential):
            principal = identity.verify_token(credential, api.org)
        elif _matches(credential, [t.encode() for t in tokens() if t]):
            if owner is None:
                return
            principal = Principal(owner)
        else:
            raise UnauthorizedError("this route needs a credential: Authorization: Bearer <token>")
        identity.authorize(api.org, principal, "invoke", f"functions/{api.function}")

    return check


__all__ = ["CredentialCheck", "authorized_callers", "bearer_tokens"]
