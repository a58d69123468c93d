"""DispatchApp: enabled on install, configured by traitlets, found by the kernels it starts,
and shut down with the server."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .api import ADD_SOURCE
from .live import LiveServer

BIN = Path(sys.executable).parent


def _extension(jp_serverapp):
    return jp_serverapp.extension_manager.extension_apps["dispatch_kernel.server"]


@pytest.mark.parametrize("dispatch_config", [{"max_body_size": 1000, "org": "research"}])
async def test_settings_are_traitlets(api, jp_serverapp, dispatch_home):
    app = next(iter(_extension(jp_serverapp)))
    assert app.max_body_size == 1000 and app.org == "research" and Path(app.home) == dispatch_home
    reply = await api("POST", "functions", {"source": {"code": ADD_SOURCE + "#" * 1000}})
    assert reply.status == 413 and "1,000" in reply.json["message"]
    created = await api("POST", "functions", {"source": {"code": ADD_SOURCE}})
    assert created.json["org"] == "research"
    assert (dispatch_home / "dispatch.db").exists()


@pytest.mark.parametrize("dispatch_config", [{"export_env": True}])
async def test_the_server_tells_its_kernels_where_it_is_and_forgets_on_stop(jp_serverapp):
    assert os.environ["DISPATCH_URL"].endswith("/a%40b/")
    assert os.environ["DISPATCH_TOKEN"] == jp_serverapp.identity_provider.token
    app = next(iter(_extension(jp_serverapp)))
    await app.stop_extension()
    assert "DISPATCH_URL" not in os.environ and "DISPATCH_TOKEN" not in os.environ
    assert app.state.core.closed


async def test_stopping_the_server_stops_the_workers(api, jp_serverapp):
    await api("POST", "functions", {"source": {"code": ADD_SOURCE}, "scaling": {"min_workers": 1}})
    app = next(iter(_extension(jp_serverapp)))
    zygotes = list(app.state.core.drivers.get("local")._zygotes.values())
    assert zygotes and all(z.alive for z in zygotes)
    await app.stop_extension()
    assert not any(z.alive for z in zygotes)


def test_installing_the_package_enables_the_extension():
    out = subprocess.run([str(BIN / "jupyter"), "server", "extension", "list"], capture_output=True,
                         text=True, timeout=120)
    text = out.stdout + out.stderr
    assert "dispatch_kernel.server" in text and "enabled" in text.split("dispatch_kernel.server", 1)[1][:40]
    assert "dispatch_kernel.server  OK" in text.replace("\x1b[32m", "").replace("\x1b[0m", "")


def test_jupyter_dispatch_serves_and_its_kernels_find_it(tmp_path):
    """`jupyter dispatch` on its own; a kernel it starts connects to it with dk.connect()."""
    from jupyter_client import BlockingKernelClient

    server = LiveServer(tmp_path / "home", tmp_path / "work")
    try:
        headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}
        create = urllib.request.Request(server.url + "dispatch/v1/functions", method="POST", headers=headers,
                                        data=json.dumps({"source": {"code": ADD_SOURCE}}).encode())
        with urllib.request.urlopen(create, timeout=60) as response:
            assert response.status == 201
        start = urllib.request.Request(server.url + "api/kernels", method="POST", headers=headers, data=b"{}")
        with urllib.request.urlopen(start, timeout=60) as response:
            kernel_id = json.load(response)["id"]
        connection_file = tmp_path / "work" / "runtime" / f"kernel-{kernel_id}.json"
        client = BlockingKernelClient(connection_file=str(connection_file))
        client.load_connection_file()
        client.start_channels()
        try:
            code = ("import dispatch_kernel as dk\nc = dk.connect()\n"
                    "result = f\"{type(c).__name__} {[f.name for f in c.list_functions()]} {c.call('add', 2, 3)}\"")
            # The shell channel only (no iopub): messages wait in ZeroMQ until the kernel is up.
            msg_id = client.execute(code, user_expressions={"result": "result"})
            deadline = time.monotonic() + 90
            while True:
                reply = client.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            assert reply["content"]["status"] == "ok", reply["content"]
            result = reply["content"]["user_expressions"]["result"]["data"]["text/plain"]
            assert result == "\"HttpClient ['add'] 5\"" or result == "'HttpClient [\\'add\\'] 5'", result
        finally:
            client.stop_channels()
    finally:
        started = time.monotonic()
        server.stop()
        assert server.process.returncode == 0 and time.monotonic() - started < 20
    assert "Shutting down" in server.log()


@pytest.mark.parametrize("dispatch_config", [{"bus": "sqlite", "plugin_options": {"sqlite": {"retry_base": 0.5}}}])
async def test_the_event_bus_is_a_traitlet(api, jp_serverapp):
    app = next(iter(_extension(jp_serverapp)))
    assert app.bus == "sqlite" and app.plugin_options == {"sqlite": {"retry_base": 0.5}}
    settings = app.state.core.settings
    assert settings.bus == "sqlite" and settings.options("sqlite") == {"retry_base": 0.5}
    reply = await api("POST", "events", {"type": "order.created", "data": {"id": 1}})
    assert reply.status == 202 and reply.json["type"] == "order.created"


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_the_access_log_of_the_api_follows_the_servers_log_level(tmp_path, level):
    server = LiveServer(tmp_path / "home", tmp_path / "work", extra=[f"--ServerApp.log_level={level}"])
    try:
        headers = {"Authorization": f"token {server.token}"}
        for path in ("functions", "functions/nothing-here"):
            request = urllib.request.Request(server.url + "dispatch/v1/" + path, headers=headers)
            try:
                urllib.request.urlopen(request, timeout=30).close()
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
    finally:
        server.stop()
    lines = server.log().splitlines()
    answered = [line for line in lines if "ServerApp.dispatch]" in line and "200 GET" in line and "/functions " in line]
    missing = [line for line in lines if "ServerApp.dispatch]" in line and "404 GET" in line]
    assert len(missing) == 1  # a warning: at every level
    assert len(answered) == (1 if level == "DEBUG" else 0)  # success is logged at debug level
