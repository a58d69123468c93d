"""The `dispatch` command end to end, as a user types it: against a live `jupyter dispatch`
server (after `dispatch login`) and against the embedded default (no login)."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.server.live import LiveServer

DISPATCH = str(Path(sys.executable).parent / "dispatch")

HELLO = '''
def handle(ctx, payload):
    print("greeting", payload["name"])
    return {"greeting": f"hello {payload['name']}, {ctx.secrets['words']['word']}"}
'''
ADD = "def add(x, y):\n    return x + y\n"
SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with a function, a secret and a schema file, and a private CLI config."""
    (tmp_path / "hello.py").write_text(HELLO)
    (tmp_path / "add.py").write_text(ADD)
    (tmp_path / "words.json").write_text(json.dumps({"word": "welcome"}))
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    monkeypatch.setenv("DISPATCH_CONFIG", str(tmp_path / "config" / "config.json"))
    monkeypatch.setenv("DISPATCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DISPATCH_URL", raising=False)
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def dispatch(*args: str, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([DISPATCH, *args], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and text in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path / "server-home", tmp_path / "server-work")
    yield live
    live.stop()


def test_a_session_against_a_live_server(workdir, server):
    login = dispatch("login", server.url, "--token", server.token)
    assert server.url in login.stdout
    config = workdir / "config" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": server.url, "token": server.token}

    assert "created secret words" in dispatch("create", "secret", "words", "words.json").stdout
    created = dispatch("create", "function", "hello", "hello.py", "--schema-in", "schema.json",
                       "--timeout", "10s", "--secret", "words")
    assert "created function hello (READY, handler handle)" in created.stdout
    listed = dispatch("get", "functions").stdout.splitlines()
    assert listed[0].split() == ["NAME", "STATUS", "HANDLER", "DRIVER", "REVISION", "MODIFIED"]
    assert listed[1].split()[:4] == ["hello", "READY", "handle", "local"]

    ran = dispatch("exec", "hello", "--input", '{"name": "Ada"}', "--wait")
    assert json.loads(ran.stdout) == {"greeting": "hello Ada, welcome"}
    queued = dispatch("exec", "hello", "--input", '{"name": "Bob"}')
    assert queued.stdout.splitlines()[1].split()[1:3] in (["hello", "QUEUED"], ["hello", "RUNNING"])
    bad = dispatch("exec", "hello", "--input", '{"name": 5}', "--wait", ok=False)
    assert_one_line_error(bad, "InputError")
    failed_id = bad.stderr.split("run ", 1)[1].split()[0]
    assert_one_line_error(dispatch("cancel", failed_id, ok=False), "already finished (FAILED)")

    runs = json.loads(dispatch("-o", "json", "get", "runs", "hello").stdout)
    assert {r["status"] for r in runs} <= {"SUCCEEDED", "FAILED", "QUEUED", "RUNNING"} and len(runs) == 3
    last = dispatch("get", "runs", "hello", "--last").stdout
    assert "InputError" in last and "status      FAILED" in last
    detail = yaml.safe_load(dispatch("get", "function", "hello", "-o", "yaml").stdout)
    assert detail["secrets"] == ["words"] and detail["schema"]["in"] == SCHEMA and "source" not in detail
    secrets = json.loads(dispatch("get", "secrets", "-o", "json").stdout)
    assert secrets[0]["keys"] == ["word"] and "values" not in secrets[0] and "welcome" not in json.dumps(secrets)

    assert_one_line_error(dispatch("create", "function", "hello", "hello.py", ok=False), "already exists")
    assert_one_line_error(dispatch("get", "function", "ghost", ok=False), "no function named 'ghost'")
    assert_one_line_error(dispatch("exec", "hello", "--input", "{nope", ok=False), "--input is not JSON")
    assert "deleted function hello" in dispatch("delete", "function", "hello").stdout
    assert "deleted secret words" in dispatch("delete", "secret", "words").stdout
    assert dispatch("-o", "json", "get", "functions").stdout.strip() == "[]"


def test_create_and_update_from_a_multi_document_yaml(workdir, server):
    spec = workdir / "app.yaml"
    spec.write_text(yaml.safe_dump_all([
        {"kind": "Function", "name": "hello", "file": "hello.py", "secrets": ["words"], "timeout": "5s",
         "schema": {"in": "schema.json"}},
        {"kind": "Secret", "name": "words", "values": {"word": "hi"}},
        {"kind": "Function", "name": "plus", "file": "add.py", "handler": "add", "scaling": {"max_workers": 1}},
    ]))
    args = ["--url", server.url, "--token", server.token]
    created = dispatch(*args, "create", "-f", "app.yaml").stdout.splitlines()
    assert created[0] == "created secret words"  # secrets first: the functions use them
    assert created[1].startswith("created function hello (READY") and created[2].startswith("created function plus")
    assert_one_line_error(dispatch(*args, "create", "-f", "app.yaml", ok=False), "already exists")

    (workdir / "add.py").write_text("def add(x, y):\n    return x + y + 100\n")
    update = workdir / "update.yaml"
    update.write_text(yaml.safe_dump({"kind": "Function", "name": "plus", "file": "add.py", "handler": "add"}))
    assert "updated function plus" in dispatch(*args, "update", "-f", "update.yaml").stdout
    assert json.loads(dispatch(*args, "exec", "plus", "--input", "[1, 2]", "--wait").stdout) == 103

    broken = workdir / "broken.yaml"
    broken.write_text("kind: Function\nname: x\nfile: add.py\ntimeout: [1]\n")
    assert_one_line_error(dispatch(*args, "create", "-f", "broken.yaml", ok=False), "$.timeout")
    broken.write_text("name: x\n")
    assert_one_line_error(dispatch(*args, "create", "-f", "broken.yaml", ok=False), "kind: Function")
    broken.write_text("kind: Function\nname: ghost\nfile: add.py\nhandler: add\n")
    assert_one_line_error(dispatch(*args, "update", "-f", "broken.yaml", ok=False), "no function named 'ghost'")


def test_get_runs_follow_prints_changes_as_they_happen(workdir, server):
    args = ["--url", server.url, "--token", server.token]
    dispatch(*args, "create", "function", "add", "add.py")
    follower = subprocess.Popen([DISPATCH, *args, "get", "runs", "add", "--follow"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
    try:
        header = lines.get(timeout=30)
        assert header.split()[:3] == ["ID", "FUNCTION", "STATUS"]
        dispatch(*args, "exec", "add", "--input", "[2, 3]", "--wait")
        statuses = [lines.get(timeout=30).split()[2] for _ in range(3)]
        assert statuses == ["QUEUED", "RUNNING", "SUCCEEDED"]
    finally:
        follower.terminate()
        follower.wait(10)


def test_the_embedded_default_without_a_login(workdir):
    assert "created secret words" in dispatch("create", "secret", "words", "words.json").stdout
    dispatch("create", "function", "hello", "hello.py", "--secret", "words")
    ran = dispatch("exec", "hello", "--input", '{"name": "Ada"}')  # embedded: waits by itself
    assert json.loads(ran.stdout) == {"greeting": "hello Ada, welcome"}
    assert "greeting Ada" in ran.stderr  # the function's own output
    assert dispatch("get", "functions").stdout.splitlines()[1].split()[0] == "hello"
    assert (workdir / "home" / "dispatch.db").exists()  # DISPATCH_HOME holds it
    runs = json.loads(dispatch("get", "runs", "-o", "json").stdout)
    assert [r["status"] for r in runs] == ["SUCCEEDED"]
    assert_one_line_error(dispatch("get", "runs", "--follow", ok=False), "--follow needs a server")
    assert_one_line_error(dispatch("create", "function", "x", "missing.py", ok=False), "cannot read missing.py")


def test_login_refuses_a_wrong_token_and_logout_forgets(workdir, server):
    assert_one_line_error(dispatch("login", server.url, "--token", "wrong", ok=False), "not authenticated")
    assert not (workdir / "config" / "config.json").exists()
    dispatch("login", server.url, "--token", server.token)
    dispatch("logout")
    assert not (workdir / "config" / "config.json").exists()


def test_an_unreachable_server_is_one_line(workdir):
    from dispatch_kernel.images.services import free_port

    result = dispatch("--url", f"http://127.0.0.1:{free_port()}/", "get", "functions", ok=False)
    assert_one_line_error(result, "cannot reach the dispatch server")


def test_usage_errors_exit_2(workdir):
    result = dispatch("get", "everything", ok=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert_one_line_error(dispatch("create", "function", "x", ok=False), "usage: dispatch create")
    assert os.environ["DISPATCH_CONFIG"].startswith(str(workdir))


def test_several_drivers_from_the_command_line(workdir, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(workdir / "no-such-kubeconfig"))  # no cluster: that driver fails
    created = dispatch("create", "function", "add", "add.py", "--driver", "local=0.9,kubernetes=0.1")
    assert "created function add (READY" in created.stdout
    shown = dispatch("get", "function", "add").stdout
    assert "split: local 0.9 READY, kubernetes 0.1 ERROR (no Kubernetes cluster is configured" in shown
    detail = yaml.safe_load(dispatch("get", "function", "add", "-o", "yaml").stdout)
    assert detail["drivers"] == {"local": 0.9, "kubernetes": 0.1}
    assert detail["driver_status"]["local"] == {"status": "READY", "reason": ""}
    pinned = json.loads(dispatch("exec", "add", "--input", "[2, 3]", "--driver", "local", "-o", "json").stdout)
    assert pinned["output"] == 5 and pinned["driver"] == "local"
    assert_one_line_error(dispatch("exec", "add", "--input", "[2, 3]", "--driver", "kubernetes", ok=False),
                          "driver 'kubernetes' of this function is not ready")
    assert_one_line_error(dispatch("create", "function", "sub", "add.py", "--driver", "local=x,kubernetes=1", ok=False),
                          "the weight of driver 'local' must be a number")
