"""`dispatch create base-image|image`, `get images|base-images`, `delete image|base-image`, as a
user types them: against a live `jupyter dispatch` server that builds on the test registry, and
against the embedded default."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.server.live import LiveServer
from tests.test_cli import dispatch

# The first build of a session may debootstrap the Python base image (minutes, once per cache).
pytestmark = pytest.mark.timeout(600)

SHOUT = "def shout(text):\n    return text.upper() + '!'\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch, registry):
    (tmp_path / "shout.py").write_text(SHOUT)
    monkeypatch.setenv("DISPATCH_CONFIG", str(tmp_path / "config" / "config.json"))
    monkeypatch.setenv("DISPATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DISPATCH_REGISTRY", registry.address)
    monkeypatch.delenv("DISPATCH_URL", raising=False)
    monkeypatch.delenv("DISPATCH_TOKEN", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # local workers inherit it
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def server(workdir):
    the_server = LiveServer(workdir / "server-home", workdir / "server")
    yield the_server
    the_server.stop()


def test_images_from_the_command_line_on_a_server(server, workdir, python_base):
    dispatch("login", server.url, "--token", server.token)
    created = dispatch("create", "base-image", "python311", python_base, "--language", "python3")
    assert created.stdout.startswith("created base image python311 (READY, python 3.11, sha256:")

    built = dispatch("create", "image", "plain", "--base", "python311")
    assert built.stdout.startswith("created image plain (READY, ")
    assert "/dispatch/images/default/plain@sha256:" in built.stdout
    log = built.stderr.splitlines()
    assert len(log) >= 2 and "error" not in built.stderr, built.stderr  # the build log, line by line

    table = dispatch("get", "images").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "BASE", "IMAGE", "MODIFIED"]
    assert table[1].split()[:3] == ["plain", "READY", "python311"]
    listed = json.loads(dispatch("get", "images", "-o", "json").stdout)
    assert [i["name"] for i in listed] == ["plain"] and listed[0]["image_url"].endswith(built.stdout.split(", ")[1][:-2])
    bases = yaml.safe_load(dispatch("get", "base-images", "-o", "yaml").stdout)
    assert [(b["name"], b["status"], b["python"]) for b in bases] == [("python311", "READY", "3.11")]
    details = dict(line.split(None, 1) if not line.startswith("base image") else ("base image", line[10:])
                   for line in dispatch("get", "image", "plain").stdout.splitlines())
    assert details["base image"].strip() == "python311" and details["status"].strip() == "READY"
    assert json.loads(dispatch("get", "base-image", "python311", "-o", "json").stdout)["image_url"] == python_base

    dispatch("create", "function", "shout", "shout.py", "--image", "plain")
    function = json.loads(dispatch("get", "function", "shout", "-o", "json").stdout)
    assert function["image_name"] == "plain"
    assert dispatch("exec", "shout", "--input", '["hi"]', "--wait").stdout.strip() == '"HI!"'

    (workdir / "images.yaml").write_text(yaml.safe_dump_all([
        {"kind": "Image", "name": "from-yaml", "base": "python311-yaml"},
        {"kind": "BaseImage", "name": "python311-yaml", "image_url": python_base},
    ]))
    applied = dispatch("create", "-f", "images.yaml")
    assert applied.stdout.splitlines() == ["created base image python311-yaml (READY)", "created image from-yaml (READY)"]
    assert [i["name"] for i in json.loads(dispatch("get", "images", "-o", "json").stdout)] == ["from-yaml", "plain"]

    missing_base = dispatch("create", "image", "x", ok=False)
    assert missing_base.returncode == 1 and missing_base.stderr.startswith("error: ") and "--base" in missing_base.stderr
    unknown = dispatch("create", "image", "x", "--base", "nope", ok=False)
    assert unknown.returncode == 1 and unknown.stderr.strip().startswith("error: ") and "nope" in unknown.stderr
    failed = dispatch("create", "image", "bad", "--base", "python311", "--requirements", "no-such-distribution-dk==1.0",
                      ok=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "no-such-distribution-dk" in failed.stderr.splitlines()[0]  # the log came first
    assert failed.stderr.splitlines()[-1].startswith("error: building image 'bad' failed")
    assert json.loads(dispatch("get", "image", "bad", "-o", "json").stdout)["status"] == "ERROR"

    assert dispatch("delete", "image", "plain").stdout.strip() == "deleted image plain"
    assert dispatch("delete", "base-image", "python311").stdout.strip() == "deleted base-image python311"
    gone = dispatch("get", "image", "plain", ok=False)
    assert gone.returncode == 1 and "plain" in gone.stderr


def test_base_images_on_the_embedded_default(workdir, registry):
    assert dispatch("get", "base-images").stdout.split() == ["NAME", "STATUS", "LANGUAGE", "PYTHON", "IMAGE", "MODIFIED"]
    broken = dispatch("create", "base-image", "gone", f"{registry.address}/dispatch/none:1", ok=False)
    assert broken.returncode == 1 and broken.stderr.startswith("error: base image gone is in ERROR")
    assert dispatch("get", "base-images", "-o", "json").stdout.count('"ERROR"') == 1
    dispatch("delete", "base-image", "gone")
    assert json.loads(dispatch("get", "base-images", "-o", "json").stdout) == []
