"""`jupyter dispatch` as a JupyterHub service: one Dispatch for every user of a hub.

JupyterHub starts a managed service with its name, URL, prefix and API token in the environment
(JUPYTERHUB_SERVICE_NAME, JUPYTERHUB_SERVICE_URL, ...). `jupyter dispatch` started so serves
where the hub expects it and knows its users through the hub: Jupyter's JupyterHub identity
provider (jupyterhub.singleuser's, HubOAuth underneath) asks the hub who holds a request's token
or login cookie, admits only those with the `access:services!service=NAME` scope, and gives each
user's name and groups to the policies (`group:NAME` subjects, _identity.py).

Such a server answers its users nothing but Dispatch: the kernels, terminals and files a Jupyter
server also serves would run code as the service's own user, past every policy, so
`DispatchOnlyAuthorizer` refuses them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from jupyter_server.auth.authorizer import Authorizer

SERVICE_NAME_ENV = "JUPYTERHUB_SERVICE_NAME"
SERVICE_URL_ENV = "JUPYTERHUB_SERVICE_URL"
SERVICE_PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"
HUB_IDENTITY = "jupyterhub.singleuser.extension.JupyterHubIdentityProvider"
RESOURCE_PREFIX = "dispatch:"  # the auth_resource of every Dispatch handler (base.py)


class DispatchOnlyAuthorizer(Authorizer):
    """Lets a user reach Dispatch's handlers (whose policies then decide) and nothing else of
    the server: no kernels, terminals, sessions or files."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Whether `user` may do `action` on `resource`: only Dispatch's resources."""
        return resource.startswith(RESOURCE_PREFIX)


def hub_identity(identity_provider: Any) -> bool:
    """Whether the server knows its users through JupyterHub (a service, a user's server)."""
    return type(identity_provider).__module__.startswith("jupyterhub.")


def hub_service_config(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The ServerApp settings of `jupyter dispatch` started by JupyterHub as a service, read from
    the environment the hub gives it; None when it was not started so."""
    env = os.environ if env is None else env
    if not env.get(SERVICE_NAME_ENV) or not env.get(SERVICE_URL_ENV):
        return None
    url = urlparse(env[SERVICE_URL_ENV])
    config: dict[str, Any] = {
        "identity_provider_class": HUB_IDENTITY,
        "authorizer_class": f"{__name__}.DispatchOnlyAuthorizer",
        "base_url": env.get(SERVICE_PREFIX_ENV) or "/",
        "ip": url.hostname or "",
        # Requests come through the hub's proxy, under the hub's own host name.
        "allow_remote_access": True,
        "trust_xheaders": True,
        "port_retries": 0,  # the hub routes to this port and no other
        "open_browser": False,
    }
    if url.port or url.scheme in ("http", "https"):
        config["port"] = url.port or (443 if url.scheme == "https" else 80)
    return config


__all__ = ["DispatchOnlyAuthorizer", "hub_identity", "hub_service_config"]
