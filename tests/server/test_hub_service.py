"""`jupyter dispatch` as a JupyterHub service, the parts that need no hub: the server settings read
from the hub's environment, the authorizer that serves Dispatch only, a kernel's credential in a
hub user's server, and a service that names no administrator. The whole flow, with a real hub
and a real OpenID Connect provider, is tests/browser/test_hub_login.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel._http import HttpClient
from dispatch_kernel.images.services import free_port
from dispatch_kernel.server.hub import DispatchOnlyAuthorizer, hub_identity, hub_service_config

HUB_ENV = {
    "JUPYTERHUB_SERVICE_NAME": "dispatch",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
    "JUPYTERHUB_SERVICE_PREFIX": "/services/dispatch/",
}


def test_started_by_the_hub_it_serves_where_the_hub_routes_and_knows_the_hubs_users():
    config = hub_service_config(HUB_ENV)
    assert config is not None
    assert (config["ip"], config["port"], config["base_url"]) == ("127.0.0.1", 10101, "/services/dispatch/")
    assert config["identity_provider_class"] == "jupyterhub.singleuser.extension.JupyterHubIdentityProvider"
    assert config["authorizer_class"] == "dispatch_kernel.server.hub.DispatchOnlyAuthorizer"
    assert config["port_retries"] == 0


def test_elsewhere_it_is_an_ordinary_server():
    assert hub_service_config({}) is None
    # A hub user's own server has a service URL but is no service: it keeps Jupyter's defaults.
    assert hub_service_config({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:9000", "JUPYTERHUB_USER": "ada"}) is None
    default_port = hub_service_config({**HUB_ENV, "JUPYTERHUB_SERVICE_URL": "https://dispatch.internal"})
    assert default_port is not None and default_port["port"] == 443


def test_a_hub_service_lets_users_reach_dispatch_and_nothing_else():
    authorizer = DispatchOnlyAuthorizer()
    assert authorizer.is_authorized(None, None, "write", "dispatch:api")
    for resource in ("kernels", "terminals", "contents", "sessions", "server", "api"):
        assert not authorizer.is_authorized(None, None, "read", resource), resource


def test_the_hubs_identity_provider_is_recognized():
    from jupyter_server.auth.identity import PasswordIdentityProvider
    from jupyterhub.singleuser.extension import JupyterHubIdentityProvider

    assert hub_identity(JupyterHubIdentityProvider.__new__(JupyterHubIdentityProvider))
    assert not hub_identity(PasswordIdentityProvider())


def test_a_kernel_in_a_hub_users_server_uses_its_hub_token_for_the_service(monkeypatch):
    monkeypatch.setenv("DISPATCH_URL", "http://127.0.0.1:8000/services/dispatch/")
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-servers-hub-token")
    with dk.connect() as client:
        assert isinstance(client, HttpClient)
        assert client.token == "the-servers-hub-token"
    monkeypatch.setenv("DISPATCH_TOKEN", "explicit")  # an explicit DISPATCH_TOKEN wins
    with dk.connect() as client:
        assert client.token == "explicit"


def test_a_hub_service_with_no_administrator_refuses_to_start(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "DISPATCH_"))}
    env.update(HUB_ENV, JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}", JUPYTERHUB_API_TOKEN="x" * 32,
               JUPYTERHUB_API_URL="http://127.0.0.1:1/hub/api", JUPYTERHUB_CLIENT_ID="service-dispatch",
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), DISPATCH_HOME=str(tmp_path / "home"))
    command = [os.path.join(os.path.dirname(sys.executable), "jupyter-dispatch"), "--allow-root",
               *[f"--ServerApp.jpserver_extensions={name}=False"
                 for name in ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals")]]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "name Dispatch's administrators with c.DispatchApp.bootstrap_admins" in result.stderr


def test_the_cli_in_a_hub_users_server_uses_its_hub_token_too(monkeypatch):
    import argparse

    from dispatch_kernel.cli.session import open_client

    monkeypatch.setenv("DISPATCH_URL", "http://127.0.0.1:8000/services/dispatch/")
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the-servers-hub-token")
    client = open_client(argparse.Namespace(url=None, token=None, org="ds"))
    try:
        assert isinstance(client, HttpClient) and client.token == "the-servers-hub-token"
    finally:
        client.close()
