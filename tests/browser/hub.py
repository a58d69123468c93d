"""A real OpenID Connect provider and a real JupyterHub that signs users in through it, with
`jupyter dispatch` as the hub's service: the set-up of a team's shared Dispatch.

- The provider is the `oidc-provider` package from npm (tests/identity/oidc/provider.mjs), with
  one client (the hub) and the users of USERS, whose `groups` claim names their groups.
- The hub is JupyterHub from PyPI with configurable-http-proxy from npm (the same node package),
  oauthenticator's GenericOAuthenticator (groups from the claim, managed by the hub), and
  SimpleLocalProcessSpawner: users' servers run as this process's user (root here), each in a
  home of its own, with no system accounts.
- `jupyter dispatch` is a managed service of the hub, at /services/dispatch/. Users' servers do
  not load the extension themselves: DISPATCH_URL points their kernels at the service, and
  their server's hub token (whose role may access the service) is the credential.

Everything listens on 127.0.0.1 (free ports), lives in one temp dir, and is stopped at the end
of the session, whatever happened; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dispatch_kernel.images.services import free_port

from .conftest import LAB_CONFIG, LAB_PAGE_CONFIG, LAB_USER_SETTINGS, _missing, _processes_with, _write_json

REPO = Path(__file__).resolve().parents[2]
NODE_PROJECT = REPO / "tests" / "identity" / "oidc"
PROVIDER_SCRIPT = NODE_PROJECT / "provider.mjs"
CHP = NODE_PROJECT / "node_modules" / ".bin" / "configurable-http-proxy"
START_TIMEOUT = 90  # seconds for the provider, or the hub with its proxy and service, to answer
STOP_TIMEOUT = 20  # seconds for a graceful stop before SIGKILL
SERVICE = "dispatch"
ADMIN_SERVICE = "dispatch-admin"  # a hub service whose token administers Dispatch in the test
USERS = {
    "ada": {"password": secrets.token_hex(8), "email": "ada@example.org", "name": "Ada", "groups": ["ds"]},
    "bob": {"password": secrets.token_hex(8), "email": "bob@example.org", "name": "Bob", "groups": ["ops"]},
}

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Hub:
    """The running provider and hub: where they answer, the admin token, the users' homes."""

    issuer: str
    url: str  # the hub's public URL (its proxy)
    admin_token: str
    users: dict[str, dict[str, Any]]
    homes: Path  # each user's server runs in homes/NAME
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def service_url(self) -> str:
        """Where users reach Dispatch: the hub service's public URL."""
        return f"{self.url}/services/{SERVICE}/"

    def home(self, user: str) -> Path:
        """The directory a user's server serves (created for it before it starts)."""
        path = self.homes / user
        path.mkdir(parents=True, exist_ok=True)
        return path

    def request(self, path: str, token: str, method: str = "GET", body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, JSON body) of `method path` on the hub's public URL with `token`."""
        data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
        request = urllib.request.Request(f"{self.url}{path}", method=method, data=data, headers={
            "Authorization": f"token {token}", "Content-Type": "application/json", **(headers or {})})
        try:
            with _opener.open(request, timeout=30) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        """The last lines of each log, for a failure's message."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _node_ready() -> None:
    """node and the test's npm packages (`make test` installs them), checked before starting."""
    if shutil.which("node") is None:
        _missing("node not found (Debian's nodejs package)")
    for path in (PROVIDER_SCRIPT, NODE_PROJECT / "node_modules" / "oidc-provider", CHP):
        if not path.exists():
            _missing(f"{path.relative_to(REPO)} not found: run `cd {NODE_PROJECT.relative_to(REPO)} && npm ci`")
    for module in ("jupyterhub", "oauthenticator"):
        try:
            __import__(module)
        except ImportError:
            _missing(f"{module} is not installed in this environment (the `test` extra has it)")


def _wait_until_ready(url: str, process: subprocess.Popen, what: str, hub: Hub, token: str | None = None) -> None:
    """Wait (bounded) until `url` answers 200: the proxy answers 404 before the hub's routes are in."""
    headers = {"Authorization": f"token {token}"} if token else {}
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with code {process.returncode}:\n{hub.log_tail()}")
        try:
            with _opener.open(urllib.request.Request(url, headers=headers), timeout=3) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, or an HTTPError: not there yet
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer {url} within {START_TIMEOUT}s:\n{hub.log_tail()}")
        time.sleep(0.5)


def _hub_config(hub: Hub, root: Path, ports: dict[str, int], client_secret: str, marker: dict[str, str]) -> str:
    """jupyterhub_config.py of the test's hub (a real deployment's is in the README)."""
    bin_dir = Path(sys.executable).parent
    jupyter = root / "jupyter"
    _write_json(jupyter / "config" / "jupyter_server_config.json",
                {**LAB_CONFIG, "ServerApp": {"allow_root": True}})
    _write_json(jupyter / "config" / "labconfig" / "page_config.json", LAB_PAGE_CONFIG)
    for name, settings in LAB_USER_SETTINGS.items():
        _write_json(jupyter / "lab-settings" / name, settings)
    jupyter_env = {"JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_DATA_DIR": str(jupyter / "data"),
                   "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1", **marker}
    service_env = {**_base_env(), **jupyter_env, "DISPATCH_HOME": str(root / "dispatch-home"),
                   "JUPYTER_RUNTIME_DIR": str(jupyter / "service-runtime")}
    user_env = {**jupyter_env, "DISPATCH_URL": hub.service_url}
    values = {
        "hub_port": ports["hub"], "hub_api_port": ports["hub_api"], "proxy_api_port": ports["proxy_api"],
        "chp": str(CHP), "root": str(root), "issuer": hub.issuer, "client_secret": client_secret,
        "hub_url": hub.url, "admin_token": hub.admin_token, "service_port": ports["service"],
        "jupyter_dispatch": str(bin_dir / "jupyter-dispatch"), "singleuser": str(bin_dir / "jupyterhub-singleuser"),
        "service_env": service_env, "user_env": user_env, "homes": str(hub.homes),
        "lab_settings": str(jupyter / "lab-settings"),
    }
    return f"""# Written by tests/browser/hub.py
v = {values!r}
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = v["hub_port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = v["hub_api_port"]
c.ConfigurableHTTPProxy.command = [v["chp"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{v['proxy_api_port']}}"
c.JupyterHub.db_url = f"sqlite:///{{v['root']}}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{{v['root']}}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{{v['root']}}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True

# Sign-in through the OpenID Connect provider; the `groups` claim makes the hub's groups.
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.login_service = "Test OIDC"
c.GenericOAuthenticator.client_id = "jupyterhub"
c.GenericOAuthenticator.client_secret = v["client_secret"]
c.GenericOAuthenticator.oauth_callback_url = v["hub_url"] + "/hub/oauth_callback"
c.GenericOAuthenticator.authorize_url = v["issuer"] + "/auth"
c.GenericOAuthenticator.token_url = v["issuer"] + "/token"
c.GenericOAuthenticator.userdata_url = v["issuer"] + "/me"
c.GenericOAuthenticator.scope = ["openid", "profile", "email", "groups"]
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.manage_groups = True
c.GenericOAuthenticator.auth_state_groups_key = "oauth_user.groups"
c.GenericOAuthenticator.allow_all = True

# Users' servers: processes of this user (no system accounts), one home each.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = v["homes"] + "/{{username}}"
c.Spawner.cmd = [v["singleuser"]]
c.Spawner.default_url = "/lab"
c.Spawner.args = [
    "--allow-root",
    # Users' servers talk to the hub's Dispatch; a Dispatch of their own would be another one.
    "--ServerApp.jpserver_extensions={{'dispatch_kernel.server': False}}",
    "--LabApp.user_settings_dir=" + v["lab_settings"],
]
c.Spawner.environment = v["user_env"]
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90

# Dispatch, one for every user: `jupyter dispatch` as a managed service.
c.JupyterHub.services = [
    {{"name": "dispatch", "url": f"http://127.0.0.1:{{v['service_port']}}",
      "command": [v["jupyter_dispatch"], "--DispatchApp.bootstrap_admins=service:dispatch-admin"],
      "environment": v["service_env"]}},
    {{"name": "dispatch-admin", "api_token": v["admin_token"]}},
]
c.JupyterHub.load_roles = [
    # Users may reach the service; their servers' tokens may too, and tell it their groups.
    {{"name": "user", "scopes": ["self", "access:services!service=dispatch"]}},
    {{"name": "server", "scopes": ["users:activity!user", "access:servers!server",
                                  "access:services!service=dispatch", "read:users:groups!user"]}},
    {{"name": "dispatch-admin", "services": ["dispatch-admin"], "scopes": ["access:services!service=dispatch"]}},
]
"""


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPATCH_SECRET_KEY", "JUPYTER_TOKEN", "DISPATCH_URL", "DISPATCH_TOKEN", "DISPATCH_HOME")
           and not k.startswith("JUPYTERHUB_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The provider, then the hub with its proxy and the Dispatch service, once per session."""
    _node_ready()
    root = tmp_path_factory.mktemp("hub")
    logs = root / "logs"
    logs.mkdir()
    ports = {name: free_port() for name in ("provider", "hub", "hub_api", "proxy_api", "service")}
    marker_value = str(root)
    marker = {"DK_TEST_HUB": marker_value}
    hub = Hub(issuer=f"http://127.0.0.1:{ports['provider']}", url=f"http://127.0.0.1:{ports['hub']}",
              admin_token=secrets.token_hex(24), users=USERS, homes=root / "homes", logs=logs)
    client_secret = secrets.token_hex(24)
    _write_json(root / "provider.json", {
        "port": ports["provider"],
        "clients": [{"client_id": "jupyterhub", "client_secret": client_secret,
                     "redirect_uris": [f"{hub.url}/hub/oauth_callback"]}],
        "users": USERS,
    })
    env = {**_base_env(), **marker}
    try:
        with (logs / "provider.log").open("wb") as out:
            # stdin stays open: the provider stops when it closes, should this process die.
            provider = subprocess.Popen(["node", str(PROVIDER_SCRIPT), str(root / "provider.json")],
                                        cwd=NODE_PROJECT, env=env, stdin=subprocess.PIPE, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        hub.processes.append(provider)
        _wait_until_ready(f"{hub.issuer}/.well-known/openid-configuration", provider, "the OIDC provider", hub)

        (root / "jupyterhub_config.py").write_text(_hub_config(hub, root, ports, client_secret, marker))
        with (logs / "jupyterhub.log").open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
                                       cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        hub.processes.append(process)
        _wait_until_ready(f"{hub.url}/hub/api/", process, "JupyterHub", hub)
        _wait_until_ready(f"{hub.service_url}dispatch/v1/openapi.json", process, "the Dispatch service", hub,
                          hub.admin_token)
        yield hub
    finally:
        for process in reversed(hub.processes):
            process.stdin and process.stdin.close()
            _stop(process)
        # Users' servers, their kernels, the service and its workers: whatever outlived the hub.
        deadline = time.monotonic() + 5
        while (left := _processes_with(f"DK_TEST_HUB={marker_value}")) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
