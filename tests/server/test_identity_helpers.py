"""Who a Jupyter user is to policies: the owner behind Jupyter's own authentication, the
identity provider's user and groups otherwise (JupyterHub's user model keeps them in hub_user)."""

from __future__ import annotations

from jupyter_server.auth import IdentityProvider, User
from jupyter_server.auth.identity import PasswordIdentityProvider

from dispatch_kernel.identity import Principal
from dispatch_kernel.server._identity import default_target, principal_of

from .api import TeamIdentity, TeamUser


class HubUser(User):
    """The shape of JupyterHub's single-user server user: the hub's model as a dict."""

    def __init__(self, name: str, model: dict) -> None:
        super().__init__(name)
        self.hub_user = model


def test_with_jupyters_own_authentication_everyone_is_the_owner():
    for provider in (IdentityProvider(), PasswordIdentityProvider()):
        assert principal_of(User("Anonymous Io"), provider, "root") == Principal("root")


def test_other_identity_providers_name_their_users_and_groups():
    provider = TeamIdentity()
    assert principal_of(TeamUser("ada", groups=("ds", "ml")), provider, "root") == Principal("ada", ("ds", "ml"))
    hub = HubUser("bob", {"name": "bob", "groups": ["finance", ""], "admin": False})
    assert principal_of(hub, provider, "root").subjects == ("bob", "group:finance")
    assert principal_of(User("carol"), provider, "root").subjects == ("carol",)


def test_actions_and_resources_follow_method_and_path():
    assert default_target("GET", "functions", ()) == ("get", "functions")
    assert default_target("GET", "functions/{name}", ("f",)) == ("get", "functions/f")
    assert default_target("PUT", "apis/{name}", ("a",)) == ("update", "apis/a")
    assert default_target("DELETE", "iam/policies/{name}", ("p",)) == ("delete", "policies/p")
    assert default_target("POST", "secrets", ()) == ("create", "secrets")
    assert default_target("POST", "runs/{id}/cancel", ("r1",)) == ("update", "runs/r1")


def test_a_jupyterhub_service_is_never_taken_for_a_user_of_its_name():
    from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser

    from dispatch_kernel.server._identity import principal_of

    provider = JupyterHubIdentityProvider.__new__(JupyterHubIdentityProvider)
    service = JupyterHubUser({"kind": "service", "name": "ada", "roles": [], "scopes": []})
    user = JupyterHubUser({"kind": "user", "name": "ada", "groups": ["ds"], "scopes": []})
    assert principal_of(service, provider, owner="root").name == "service:ada"
    assert principal_of(user, provider, owner="root").subjects == ("ada", "group:ds")
