"""Who asks, in which organization, to do what: the principal, org and (action, resource) of a
REST request, for the one authorization check every handler goes through (base.py).

The principal is Jupyter's: the user of the server's IdentityProvider (JupyterHub's users carry
their groups). A server whose identity provider is Jupyter's own (token or password) has one
user, whoever holds its secret: that is the server's owner (c.DispatchApp.owner). A service
account authenticates with `Authorization: Bearer <JWT>` instead.
"""

from __future__ import annotations

import re
from typing import Any

from ..identity.policies import Principal

ORG_HEADER = "X-Dispatch-Org"
_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # model.check_name's pattern
_ACTIONS = {"GET": "get", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def jupyters_own(identity_provider: Any) -> bool:
    """Whether the server authenticates with Jupyter's own token or password (one user: the
    holder of the secret), not with users of their own (JupyterHub, an OAuth provider)."""
    return type(identity_provider).__module__.startswith("jupyter_server.auth")


def groups_of(user: Any) -> tuple[str, ...]:
    """The groups an identity provider gave the user: `user.groups`, or the JupyterHub user
    model's `groups` (JupyterHub's single-user identity provider keeps it as `hub_user`)."""
    groups = getattr(user, "groups", None)
    if groups is None:
        hub_user = getattr(user, "hub_user", None)
        groups = hub_user.get("groups") if isinstance(hub_user, dict) else None
    return tuple(str(g) for g in groups or () if g)


def principal_of(user: Any, identity_provider: Any, owner: str) -> Principal:
    """The principal of a Jupyter user; a JupyterHub service (a token of the hub's services,
    not of a user) is `service:NAME`, so that no user named like it gets its rights."""
    if jupyters_own(identity_provider):
        return Principal(owner)
    name = str(getattr(user, "username", None) or user)
    hub_user = getattr(user, "hub_user", None)
    if isinstance(hub_user, dict) and hub_user.get("kind") == "service":
        return Principal(f"service:{name}")
    return Principal(name, groups_of(user))


def valid_org(text: str) -> bool:
    """Whether `text` can name an organization."""
    return bool(_ORG.match(text))


def default_target(method: str, path: str, args: tuple[str, ...]) -> tuple[str, str]:
    """(action, resource) of a request by its method and OpenAPI path: the resource is the
    path's first segment (`functions`), with the entity's name when the path has one
    (`functions/NAME`); GET is get, PUT and PATCH update, DELETE delete, POST create on a
    collection and update on one entity (`runs/{id}/cancel`)."""
    parts = path.split("/")
    kind = parts[1] if parts[0] == "iam" and len(parts) > 1 else parts[0]  # iam/policies: policies
    resource = f"{kind}/{args[0]}" if args else kind
    action = _ACTIONS.get(method) or ("update" if args else "create")
    return action, resource


__all__ = ["ORG_HEADER", "default_target", "groups_of", "jupyters_own", "principal_of", "valid_org"]
