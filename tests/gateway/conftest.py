"""One deployment for the gateway's HTTP tests: a real `jupyter dispatch` server and a standalone
`dispatch gateway` process over the same home, with the functions and APIs the tests call.

Both are slow to start (two processes, each with its own workers), so they are made once for
the module that uses them; each test calls them over real HTTP on 127.0.0.1, the same tests
against either (`gateway` is parametrized).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import dispatch_kernel as dk
from dispatch_kernel.images.services import free_port, stop_process
from tests.server.live import LiveServer

BODY_LIMIT = 64 * 1024  # both serve with this body limit, so 413 is cheap to reach
START_TIMEOUT = 60.0


def hello(ctx, payload):
    return {"greeting": f"hello {payload['name']}", "agent": ctx.http["headers"].get("user-agent")}


def echo(ctx, payload):
    return {"payload": payload, "http": ctx.http}


def shout(text):
    return text.upper()


def fail(ctx, payload):
    raise ValueError("the secret detail of a failure")


def nap(ctx, payload):
    import time

    time.sleep(5)
    return "awake"


def shaped(ctx, payload):
    import dispatch_kernel as dk

    kind = payload["kind"]
    if kind == "redirect":
        return dk.Response.redirect("/elsewhere", 303)
    if kind == "html":
        return dk.Response.html("<h1>hi</h1>", 201)
    if kind == "bytes":
        return dk.Response(b"\x00\x01binary", headers={"X-Kind": "bytes"})
    if kind == "dict":  # the documented dict form, without dk
        return {"$response": {"status": 418, "headers": {"Content-Type": "text/plain"}, "body": "teapot"}}
    return {"$response": {"status": "not a status"}}


@dataclass
class Answer:
    """An HTTP answer as a test reads it."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Target:
    """One gateway under test: where its routes live (`root`, a URL ending in '/')."""

    name: str
    root: str

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        """`method` on `path` below the root, sent exactly as given (no normalization)."""
        parts = urlsplit(self.root)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            data = body.encode() if isinstance(body, str) else body
            connection.request(method, parts.path + path.lstrip("/"), body=data, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()


@dataclass
class Deployment:
    """The server, the standalone gateway, a REST client of the server, and the token."""

    server: LiveServer
    client: dk.HttpClient
    targets: dict[str, Target]
    token: str


def start_gateway(home: Path, workdir: Path, port: int, token: str, api_url: str) -> subprocess.Popen:
    log = open(workdir / "gateway.log", "wb")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPATCH_URL", "DISPATCH_TOKEN")}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dispatch"), "gateway", "--port", str(port), "--home", str(home),
         "--token", token, "--api-url", api_url, "--max-body-size", str(BODY_LIMIT)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dispatch gateway exited ({process.returncode}):\n"
                               f"{(workdir / 'gateway.log').read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/default/")
            connection.getresponse().read()
            connection.close()
            return process
        except OSError:
            time.sleep(0.05)
    stop_process(process, grace=10)
    raise RuntimeError("dispatch gateway did not answer within 60s")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    """The server and the standalone gateway on one home, with functions and APIs deployed."""
    root = tmp_path_factory.mktemp("gateway")
    home = root / "home"
    # UV_OFFLINE: the deploy meant to fail fails here, without asking a registry.
    server = LiveServer(home, root / "server", extra=[f"--DispatchApp.max_body_size={BODY_LIMIT}"],
                        env={"UV_OFFLINE": "1"})
    gateway = None
    try:
        client = dk.connect(server.url, token=server.token)
        for fn, name, options in ((hello, "hello", {}), (echo, "echo", {}), (shout, "shout", {}),
                                  (fail, "fail", {}), (nap, "nap", {"timeout": "300ms"}),
                                  (shaped, "shaped", {}),
                                  (echo, "typed", {"schema_in": {"type": "object", "required": ["n"],
                                                                 "properties": {"n": {"pattern": "^[0-9]+$"}}}})):
            client.deploy(fn, name=name, **options)
        with pytest.raises(dk.DeployError):  # left in ERROR: its route answers 503
            client.deploy(echo, name="broken", requirements=["dispatch-kernel-no-such-distribution==0.0.1"])
        client.create_api("hello", "hello", methods=["GET", "POST"], paths=["/hello/{name}"])
        client.create_api("echo", "echo", methods=["GET", "POST", "PUT", "DELETE"], paths=["/echo", "/echo/{id}"])
        client.create_api("shout", "shout", methods=["POST"], paths=["/shout"])
        client.create_api("fail", "fail", paths=["/fail"])
        client.create_api("nap", "nap", paths=["/nap"])
        client.create_api("typed", "typed", paths=["/typed/{n}"])
        client.create_api("shaped", "shaped", paths=["/shaped/{kind}"])
        client.create_api("ghost", "no-such-function", paths=["/ghost"])
        client.create_api("broken", "broken", paths=["/broken"])
        client.create_api("off", "hello", paths=["/off/{name}"], enabled=False)
        client.create_api("private", "echo", paths=["/private"], auth="token")
        client.create_api("secure", "echo", paths=["/secure"], protocols=["https"])
        client.create_api("open", "echo", methods=["GET", "POST"], paths=["/open"],
                          cors={"origins": ["http://page.test:8000"], "headers": ["Content-Type"], "max_age": 60})
        client.create_api("hosted", "echo", paths=["/on-host"], hosts=["api.example.test"])
        gateway_port = free_port()
        gateway = start_gateway(home, root, gateway_port, server.token, server.url)
        targets = {"extension": Target("extension", server.url + "dispatch/http/"),
                   "standalone": Target("standalone", f"http://127.0.0.1:{gateway_port}/")}
        yield Deployment(server, client, targets, server.token)
        client.close()
    finally:
        if gateway is not None:
            stop_process(gateway, grace=20)
        server.stop()


@pytest.fixture(params=["extension", "standalone"])
def gateway(request, deployment: Deployment) -> Target:
    """Each test runs against the extension's routes and the standalone gateway's."""
    return deployment.targets[request.param]
