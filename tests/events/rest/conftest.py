"""A real Jupyter server with the dispatch extension (pytest-jupyter), for the events endpoints."""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and hooks, for this directory)
from traitlets.config import Config


@pytest.fixture
def jp_server_config(tmp_path):
    return Config({
        "ServerApp": {"jpserver_extensions": {"dispatch_kernel.server": True}},
        "DispatchApp": {"home": str(tmp_path / "dispatch-home"), "export_env": False},
    })


@pytest.fixture(autouse=True)
def _environment_is_restored(monkeypatch):
    for name in ("DISPATCH_URL", "DISPATCH_TOKEN"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
