"""A stand-in for an OpenFaaS gateway, for tests: what cannot run here (OpenFaaS needs a
cluster or faasd), checked against OpenFaaS's own OpenAPI document.

Every request body the driver sends is validated against the gateway's published schemas
(tests/drivers/specs/openfaas-gateway.openapi.yml, with OpenAPI 3.0 semantics, strictly: a
property the schema does not name is refused), and basic auth is checked as the gateway does.
Functions it is asked to deploy are real: it starts their image with podman (the Docker API of
the test's podman service) and passes invocations through to the container's runtime server,
as of-watchdog passes them to the function's process. Replicas are containers; scaling to 0
removes them and the next invocation starts one again (scale from zero).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator
from tornado import httpclient, web
from tornado.httpserver import HTTPServer

SPEC = Path(__file__).parent / "specs" / "openfaas-gateway.openapi.yml"


def _strict(schema: Any, schemas: dict[str, Any]) -> Any:
    """The schema with every $ref inlined and objects closed to properties they do not name."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _strict(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
        out = {key: _strict(value, schemas) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item, schemas) for item in schema]
    return schema


class Spec:
    """The request body schemas of the gateway's operations."""

    def __init__(self) -> None:
        document = yaml.safe_load(SPEC.read_text())
        schemas = document["components"]["schemas"]
        self.bodies: dict[tuple[str, str], OAS30Validator] = {}
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                content = (operation.get("requestBody") or {}).get("content") or {}
                schema = (content.get("application/json") or {}).get("schema")
                if schema is not None:
                    self.bodies[(method.upper(), path)] = OAS30Validator(_strict(schema, schemas))

    def problems(self, method: str, path: str, body: Any) -> list[str]:
        """What is wrong with `body` for the operation, in words (none: valid)."""
        validator = self.bodies[(method, path)]
        return [f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message}" for e in validator.iter_errors(body)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeGateway:
    """The gateway on 127.0.0.1: functions it keeps, containers it started, requests it saw."""

    def __init__(self, docker_host: str, engine_options: dict[str, Any], username: str = "admin",
                 password: str = "s3cret") -> None:
        import docker

        self.engine = docker.DockerClient(base_url=docker_host, timeout=120)
        self.engine_options = engine_options
        self.spec = Spec()
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.functions: dict[str, dict[str, Any]] = {}  # name -> the FunctionDeployment body
        self.containers: dict[str, list[tuple[Any, int]]] = {}  # name -> [(container, port)]
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, body) of every system call
        self.refused: list[tuple[str, list[str]]] = []  # bodies that failed the schema
        self.invocations: dict[str, int] = {}
        self.queued: list[str] = []  # functions of the runs queued on /async-function, in order
        self.restarts: dict[str, int] = {}  # name -> replicas replaced after their container ended
        self._lock = threading.Lock()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-openfaas")
        self._started = threading.Event()

    # ------------------------------------------------------------------ lifetime

    def start(self) -> FakeGateway:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the fake gateway did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        for name in list(self.containers):
            self._set_replicas(name, 0)
        self.engine.close()

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application([
            (r"/system/functions", _Functions, {"gateway": self}),
            (r"/system/function/([^/]+)", _Function, {"gateway": self}),
            (r"/system/scale-function/([^/]+)", _Scale, {"gateway": self}),
            (r"/function/([^/]+)", _Invoke, {"gateway": self}),
            (r"/async-function/([^/]+)", _InvokeAsync, {"gateway": self}),
        ])
        server = HTTPServer(app, max_body_size=64 << 20)
        server.listen(self.port, "127.0.0.1")
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.stop()
            self._loop.close()

    # ------------------------------------------------------------------ replicas

    def _start_container(self, name: str) -> tuple[Any, int]:
        body = self.functions[name]
        port = _free_port()
        environment = {**(body.get("envVars") or {}), "PORT": str(port), "HOST": "127.0.0.1"}
        kwargs: dict[str, Any] = {"detach": True, "init": True, "network_mode": "host",
                                  "environment": environment, "labels": {"fake-openfaas": name},
                                  "name": f"fake-openfaas-{name}-{port}"}
        memory = (body.get("limits") or {}).get("memory")
        if memory:
            kwargs["mem_limit"] = _bytes(memory)
            kwargs["memswap_limit"] = _bytes(memory)
        kwargs.update(self.engine_options)
        self.engine.images.pull(body["image"])
        container = self.engine.containers.run(body["image"], **kwargs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # of-watchdog's readiness: the function's health path
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_/health", timeout=2) as reply:
                    if reply.status == 200:
                        return container, port
            except OSError:
                time.sleep(0.05)
        container.remove(force=True)
        raise RuntimeError(f"the container of {name} did not become healthy")

    def _set_replicas(self, name: str, replicas: int) -> None:
        with self._lock:
            running = self.containers.setdefault(name, [])
            while len(running) > replicas:
                container, _ = running.pop()
                try:
                    container.remove(force=True)
                except Exception:
                    pass
            while len(running) < replicas:
                running.append(self._start_container(name))

    def _revive(self, name: str) -> None:
        """Replace replicas whose container ended, as the provider's kubelet restarts them."""
        with self._lock:
            running = self.containers.get(name) or []
            for index, (container, _) in enumerate(running):
                try:
                    container.reload()
                    alive = container.status == "running"
                except Exception:
                    alive = False
                if not alive:
                    try:
                        container.remove(force=True)
                    except Exception:
                        pass
                    running[index] = self._start_container(name)
                    self.restarts[name] = self.restarts.get(name, 0) + 1

    def replica_port(self, name: str) -> int:
        """A running replica's port; scaled from zero when there is none."""
        if not self.containers.get(name):
            self._set_replicas(name, 1)
        self._revive(name)
        running = self.containers[name]
        self.invocations[name] = self.invocations.get(name, 0) + 1
        return running[self.invocations[name] % len(running)][1]

    def status(self, name: str) -> dict[str, Any]:
        body = self.functions[name]
        running = self.containers.get(name) or []
        return {"name": name, "image": body["image"], "namespace": body.get("namespace", "openfaas-fn"),
                "labels": body.get("labels"), "annotations": body.get("annotations"),
                "envVars": body.get("envVars") or {}, "limits": body.get("limits"),
                "replicas": len(running), "availableReplicas": len(running),
                "invocationCount": self.invocations.get(name, 0)}


def _bytes(quantity: str) -> int:
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if quantity.endswith(unit):
            return int(quantity[:-2]) * factor
    return int(quantity)


class _Handler(web.RequestHandler):
    def initialize(self, gateway: FakeGateway) -> None:
        self.gateway = gateway

    def prepare(self) -> None:
        if self.request.headers.get("Authorization") != self.gateway.auth:
            self.set_status(401)
            self.finish("Unauthorized")

    def body_for(self, path: str) -> Any:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON")
        self.gateway.requests.append((self.request.method, self.request.path, body))
        problems = self.gateway.spec.problems(self.request.method, path, body)
        if problems:
            self.gateway.refused.append((self.request.path, problems))
            raise web.HTTPError(400, "; ".join(problems))
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        self.finish(getattr(exc, "log_message", None) or self._reason)


class _Functions(_Handler):
    def get(self) -> None:
        self.write(json.dumps([self.gateway.status(name) for name in self.gateway.functions]))

    async def post(self) -> None:
        body = self.body_for("/system/functions")
        if body["service"] in self.gateway.functions:
            raise web.HTTPError(400, f"function {body['service']} already exists")
        self.gateway.functions[body["service"]] = body
        await asyncio.get_running_loop().run_in_executor(None, self.gateway._set_replicas, body["service"], 1)
        self.set_status(202)

    async def put(self) -> None:
        body = self.body_for("/system/functions")
        name = body["service"]
        if name not in self.gateway.functions:
            raise web.HTTPError(404, f"function {name} not found")
        self.gateway.functions[name] = body
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.gateway._set_replicas, name, 0)  # a new image: new replicas
        await loop.run_in_executor(None, self.gateway._set_replicas, name, 1)
        self.set_status(202)

    async def delete(self) -> None:
        body = self.body_for("/system/functions")
        name = body["functionName"]
        if name not in self.gateway.functions:
            raise web.HTTPError(404, f"function {name} not found")
        await asyncio.get_running_loop().run_in_executor(None, self.gateway._set_replicas, name, 0)
        del self.gateway.functions[name]


class _Function(_Handler):
    def get(self, name: str) -> None:
        if name not in self.gateway.functions:
            raise web.HTTPError(404, f"function {name} not found")
        self.write(json.dumps(self.gateway.status(name)))


class _Scale(_Handler):
    async def post(self, name: str) -> None:
        body = self.body_for("/system/scale-function/{functionName}")
        if name not in self.gateway.functions or body["serviceName"] != name:
            raise web.HTTPError(404, f"function {name} not found")
        await asyncio.get_running_loop().run_in_executor(None, self.gateway._set_replicas, name, body["replicas"])
        self.set_status(202)


class _Invoke(_Handler):
    async def post(self, name: str) -> None:
        if name not in self.gateway.functions:
            raise web.HTTPError(404, f"function {name} not found")
        port = await asyncio.get_running_loop().run_in_executor(None, self.gateway.replica_port, name)
        reply = await httpclient.AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/", method="POST", body=self.request.body, raise_error=False,
            headers={"Content-Type": self.request.headers.get("Content-Type", "application/octet-stream")},
            request_timeout=600)
        self.set_status(reply.code if reply.code != 599 else 502)
        self.finish(reply.body or (str(reply.error) if reply.error else b""))


class _InvokeAsync(_Handler):
    async def post(self, name: str) -> None:
        if name not in self.gateway.functions:
            raise web.HTTPError(404, f"function {name} not found")
        callback = self.request.headers.get("X-Callback-Url")
        body, content_type = self.request.body, self.request.headers.get("Content-Type", "")
        call_id = self.request.headers.get("X-Call-Id") or str(uuid.uuid4())
        self.gateway.queued.append(name)
        self.set_status(202)
        self.set_header("X-Call-Id", call_id)
        self.finish()

        async def later() -> None:  # the queue-worker: run, then POST the answer to the callback
            port = await asyncio.get_running_loop().run_in_executor(None, self.gateway.replica_port, name)
            client = httpclient.AsyncHTTPClient()
            started = time.monotonic()
            reply = await client.fetch(f"http://127.0.0.1:{port}/", method="POST", body=body,
                                       headers={"Content-Type": content_type}, raise_error=False,
                                       request_timeout=600)
            if callback:  # the queue-worker's headers; a replica that went away is the gateway's 502
                await client.fetch(callback, method="POST", body=reply.body or b"", raise_error=False, headers={
                    "X-Function-Status": str(reply.code if reply.code != 599 else 502), "X-Call-Id": call_id,
                    "X-Function-Name": name, "X-Duration-Seconds": f"{time.monotonic() - started:f}"})

        asyncio.get_running_loop().create_task(later())


__all__ = ["FakeGateway", "Spec"]
