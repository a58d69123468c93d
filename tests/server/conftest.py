"""A real Jupyter server with the dispatch extension per test (pytest-jupyter), in the test's loop.

pytest-jupyter's fixtures and hooks are imported here, so they apply to this directory only;
its default base_url, `/a%40b/`, is kept on purpose: it catches URLs built without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and hooks, for this directory)
from traitlets.config import Config

from .api import response_problems


@pytest.fixture
def dispatch_home(tmp_path):
    return tmp_path / "dispatch-home"


@pytest.fixture
def dispatch_config() -> dict[str, Any]:
    """Extra c.DispatchApp settings; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def dispatch_store() -> dict[str, Any]:
    """c.DispatchApp.store, when not the default SQLite: a module that runs its tests on every
    store overrides this fixture with `store_params` (below)."""
    return {}


@pytest.fixture(scope="session")
def _databases():
    """PostgreSQL databases of server tests, dropped when the session ends: pytest-jupyter's
    autouse cleanup closes a test's server (and its core) after every fixture the test asked
    for, so a database dropped with the test would vanish under a core still closing."""
    opened: list[Any] = []
    yield opened
    for database in opened:
        database.__exit__(None, None, None)


def store_params(request) -> Any:
    """For a `dispatch_store` fixture parametrized ["sqlite", "postgres"]: the server's store
    settings (a new PostgreSQL database of the test's own for "postgres")."""
    if request.param == "sqlite":
        return {}
    from tests.postgres_support import fresh_database

    database = fresh_database()
    dsn = database.__enter__()
    request.getfixturevalue("_databases").append(database)
    return {"store": dsn}


@pytest.fixture
def jp_server_config(dispatch_home, dispatch_config, dispatch_store):
    return Config({
        "ServerApp": {"jpserver_extensions": {"dispatch_kernel.server": True}},
        "DispatchApp": {"home": str(dispatch_home), "export_env": False, **dispatch_store, **dispatch_config},
    })


@pytest.fixture(autouse=True)
def _environment_is_restored(monkeypatch):
    # A server with export_env on sets these in this process: never let them outlive the test.
    for name in ("DISPATCH_URL", "DISPATCH_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _not_json(constant: str) -> None:
    raise AssertionError(f"the server wrote {constant}, which strict JSON parsers refuse")


@dataclass
class Reply:
    status: int
    json: Any
    headers: Any
    body: bytes


@pytest.fixture
def api(jp_fetch):
    """`await api(method, path, body)` under dispatch/v1/; the reply is checked against the spec."""

    async def call(method: str, path: str, body: Any = None, *, raw: bytes | str | None = None,
                   params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Reply:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False, "headers": dict(headers or {})}
        if raw is not None:
            kwargs["body"] = raw
        elif body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = b""
        kwargs["allow_nonstandard_methods"] = True
        response = await jp_fetch("dispatch", "v1", *path.split("/"), params=params, **kwargs)
        content_type = response.headers.get("Content-Type", "")
        problems = response_problems(method, path, response.code, content_type, response.body or b"")
        assert not problems, problems
        data = (json.loads(response.body, parse_constant=_not_json)
                if response.body and content_type.startswith("application/json") else None)
        if response.code >= 400 and not (response.code == 422 and "error" in (data or {})):
            assert data is not None and data["code"] == response.code and data["message"], response.body
        return Reply(response.code, data, response.headers, response.body or b"")

    return call
