"""The README's JupyterHub configurations stay true: each block of its hub section is executed as a
jupyterhub_config.py would be, the OAuthenticator it configures is built from it, and the groups
it makes of a provider's answer are the `group:` names the README promises. The generic OIDC one
also runs against a real provider and hub in tests/browser/test_hub_login.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## A team's Dispatch: JupyterHub and OAuth2 / OpenID Connect sign-in"
ENV = {name: f"<{name}>" for name in ("OIDC_CLIENT_SECRET", "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET",
                                      "AAD_TENANT_ID", "AAD_CLIENT_ID", "AAD_CLIENT_SECRET")}


def _blocks() -> list[str]:
    text = README.read_text()
    assert SECTION in text, "the README lost its JupyterHub section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _config(source: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    c = Config()
    exec(compile("import os\n" + source, "README.md", "exec"), {"c": c})  # noqa: S102 (our own README)
    return c


def _block(name: str) -> str:
    found = [b for b in _blocks() if f'authenticator_class = "{name}"' in b]
    assert len(found) == 1, f"the README should show one {name} configuration"
    return found[0]


def _groups(cls: type, config: Config, auth_state: dict[str, Any]) -> set[str]:
    authenticator = cls(config=config)
    assert authenticator.manage_groups, "groups are what the provider says only when the hub manages them"
    return asyncio.run(authenticator.get_user_groups(auth_state))


def test_the_service_block_points_users_servers_at_the_service_and_lets_their_tokens_in(monkeypatch):
    c = _config(_blocks()[0], monkeypatch)
    (service,) = c.JupyterHub.services
    assert service["command"][:2] == ["jupyter", "dispatch"] and service["name"] == "dispatch"
    assert any(arg.startswith("--DispatchApp.bootstrap_admins=") for arg in service["command"])
    roles = {role["name"]: role["scopes"] for role in c.JupyterHub.load_roles}
    assert "access:services!service=dispatch" in roles["user"]
    assert {"access:services!service=dispatch", "read:users:groups!user"} <= set(roles["server"])
    assert c.Spawner.environment["DISPATCH_URL"].endswith("/services/dispatch/")
    assert "--ServerApp.jpserver_extensions={'dispatch_kernel.server': False}" in c.Spawner.args


def test_generic_oidc_takes_the_groups_claim(monkeypatch):
    from oauthenticator.generic import GenericOAuthenticator

    config = _config(_block("generic-oauth"), monkeypatch)
    assert "groups" in config.GenericOAuthenticator.scope
    assert _groups(GenericOAuthenticator, config, {"oauth_user": {"groups": ["ds", "ops"]}}) == {"ds", "ops"}


def test_github_teams_become_org_team_groups(monkeypatch):
    from oauthenticator.github import GitHubOAuthenticator

    config = _config(_block("github"), monkeypatch)
    assert "read:org" in config.GitHubOAuthenticator.scope
    teams = [{"slug": "data-science", "organization": {"login": "my-org"}},
             {"slug": "ops", "organization": {"login": "other-org"}}]
    assert _groups(GitHubOAuthenticator, config, {"teams": teams}) == {"my-org:data-science", "other-org:ops"}


def test_azure_ad_takes_the_id_tokens_groups_claim(monkeypatch):
    from oauthenticator.azuread import AzureAdOAuthenticator

    config = _config(_block("azuread"), monkeypatch)
    authenticator = AzureAdOAuthenticator(config=config)
    assert authenticator.tenant_id == "<AAD_TENANT_ID>"
    assert "<AAD_TENANT_ID>" in authenticator.authorize_url
    ids = ["6f3c0a5e-0000-4000-8000-000000000001"]
    assert _groups(AzureAdOAuthenticator, config, {"user": {"groups": ids}}) == set(ids)
