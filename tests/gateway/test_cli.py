"""`dispatch create api`, `get apis`, `delete api`, `kind: API` in -f files and `dispatch gateway`,
as a user types them (on the embedded default: the same commands work after a login)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import DISPATCH, assert_one_line_error, dispatch

SPEC = """\
kind: Function
name: hello
code: |
  def handle(ctx, payload):
      return {"greeting": "hello " + payload["name"]}
---
kind: API
name: hello-api
function: hello
methods: [GET, POST]
paths: ["/hello/{name}"]
cors: {origins: ["http://localhost:3000"]}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPATCH_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("DISPATCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DISPATCH_URL", raising=False)
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_apis_are_created_listed_shown_and_deleted(workdir):
    created = dispatch("create", "api", "hello-api", "hello", "--method", "GET", "--method", "post",
                       "--path", "/hello/{name}", "--cors", "--auth", "token")
    assert created.stdout.splitlines() == ["created API hello-api (GET,POST /hello/{name} -> hello)",
                                           "  /default/hello/{name}"]
    listed = dispatch("get", "apis").stdout.splitlines()
    assert listed[0].split() == ["NAME", "FUNCTION", "METHODS", "PATHS", "AUTH", "CORS", "ENABLED"]
    assert listed[1].split() == ["hello-api", "hello", "GET,POST", "/hello/{name}", "token", "any", "origin", "yes"]
    shown = json.loads(dispatch("get", "api", "hello-api", "-o", "json").stdout)
    assert shown["cors"] is True and shown["auth"] == "token" and shown["paths"] == ["/hello/{name}"]
    conflict = dispatch("create", "api", "again", "other", "--path", "/hello/{who}", ok=False)
    assert_one_line_error(conflict, "hello-api")
    disabled = dispatch("create", "api", "again", "other", "--path", "/hello/{who}", "--disable")
    assert "created API again" in disabled.stdout
    assert "deleted api hello-api" in dispatch("delete", "api", "hello-api").stdout
    assert_one_line_error(dispatch("get", "api", "hello-api", ok=False), "hello-api")


def test_create_api_needs_a_function_and_a_path(workdir):
    assert_one_line_error(dispatch("create", "api", "x", "hello", ok=False), "--path")
    assert_one_line_error(dispatch("create", "api", "x", "hello", "--path", "no-slash", ok=False), "'/'")
    assert dispatch("get", "apis").stdout.splitlines()[1:] == []


def test_kind_api_in_files_is_created_then_updated(workdir: Path):
    (workdir / "app.yaml").write_text(SPEC)
    created = dispatch("create", "-f", "app.yaml").stdout
    assert "created function hello" in created and "created API hello-api" in created
    (workdir / "app.yaml").write_text(SPEC.replace('["/hello/{name}"]', '["/greet/{name}"]'))
    updated = dispatch("update", "-f", "app.yaml").stdout
    assert "updated API hello-api (GET,POST /greet/{name} -> hello)" in updated
    api = json.loads(dispatch("-o", "json", "get", "api", "hello-api").stdout)
    assert api["paths"] == ["/greet/{name}"] and api["revision"] == 2
    assert api["cors"]["origins"] == ["http://localhost:3000"]
    (workdir / "bad.yaml").write_text("kind: API\nname: bad\nfunction: hello\npaths: [/x]\nverbs: [GET]\n")
    assert_one_line_error(dispatch("create", "-f", "bad.yaml", ok=False), "API bad")


def test_the_gateway_commands_say_how_they_are_used(workdir):
    for command in ([DISPATCH, "gateway", "--help"],
                    [str(Path(sys.executable).parent / "jupyter"), "dispatch-gateway", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 0 and "--port" in result.stdout and "--home" in result.stdout
    bad = subprocess.run([DISPATCH, "gateway", "--port", "not-a-port"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "--port" in bad.stderr
