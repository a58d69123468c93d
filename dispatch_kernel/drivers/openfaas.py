"""The OpenFaaS driver: a function is an OpenFaaS function of its own OCI image.

The image manager builds the function's image and pushes it to the registry; this driver
deploys it through the gateway's REST API (`POST /system/functions`, `PUT` to update, `DELETE`
to remove, `POST /system/scale-function/{name}` for the replica count) and sends runs to
`POST /function/{name}`. The image's runtime server (runtime/server.py) serves of-watchdog's
http-mode contract: health on `/_/health`, requests passed through to `/`, where it takes
pickled jobs as the container driver sends them.

Options (`Settings.plugin_options["openfaas"]`):
- `gateway`: the gateway's URL (else $OPENFAAS_URL, else http://127.0.0.1:8080);
- `credentials`: the name of a Dispatch secret of the function's organization with keys
  `username` and `password`, sent as basic auth (OpenFaaS's `basic-auth` secret); none: no auth;
- `namespace`: the OpenFaaS namespace of functions (the provider's default when unset);
- `ready_timeout`: seconds deploy waits for a replica to be available (default 120).

Scaling maps to OpenFaaS's labels: `com.openfaas.scale.min` / `.max` from min/max workers, and
`com.openfaas.scale.zero` when min_workers is 0 (scaled to zero when idle, by the provider).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from typing import Any
from urllib.parse import quote

from ..images.base import FunctionImage, Progress
from ..model import DeployError, Function
from ..packaging import FunctionSource
from ..runtime.protocol import Job, Outcome
from ..settings import Settings
from .base import FaaSDriver, OutcomeSink, Runs
from .remote import EngineDown, batches, post_jobs

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
READY_TIMEOUT = 120.0
_DNS = re.compile(r"[^a-z0-9-]+")


def service_name(function: Function) -> str:
    """The OpenFaaS name of a function: DNS-1123 (lower case, digits, '-'), unique per org and
    name, at most 63 characters."""
    base = _DNS.sub("-", f"{function.org}-{function.name}".lower()).strip("-")
    if base == f"{function.org}-{function.name}" and len(base) <= 63:
        return base
    digest = hashlib.sha256(f"{function.org}/{function.name}".encode()).hexdigest()[:8]
    return f"{base[:54].strip('-')}-{digest}"


def memory_text(size: int) -> str:
    """Bytes as Kubernetes-style quantity text, which OpenFaaS passes on ("512Mi")."""
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


class OpenFaasDriver(FaaSDriver):
    """Functions deployed to and run through an OpenFaaS gateway."""

    name = "openfaas"
    runs = Runs.IMAGE

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        import urllib3

        self.gateway = str(self.options.get("gateway") or os.environ.get("OPENFAAS_URL") or DEFAULT_GATEWAY).rstrip("/")
        self.namespace = self.options.get("namespace") or ""
        self.ready_timeout = float(self.options.get("ready_timeout") or READY_TIMEOUT)
        self.http = urllib3.PoolManager(maxsize=64, block=False)
        self._deployed: dict[tuple[str, str], str] = {}  # (org, name) -> digest deployed
        self._auth: dict[str, dict[str, str]] = {}  # org -> headers
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the gateway

    def _headers(self, org: str) -> dict[str, str]:
        headers = self._auth.get(org)
        if headers is not None:
            return headers
        headers = {}
        secret_name = self.options.get("credentials")
        if secret_name:
            if self.secrets is None:
                raise DeployError("the openfaas driver needs the core's secrets to read its credentials")
            values = self.secrets.get(secret_name, org).values
            if "username" not in values or "password" not in values:
                raise DeployError(f"secret {secret_name!r} must have the keys username and password")
            token = base64.b64encode(f"{values['username']}:{values['password']}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._auth[org] = headers
        return headers

    def _call(self, method: str, path: str, org: str, body: Any = None,
              query: dict[str, str] | None = None) -> tuple[int, Any]:
        import urllib3

        url = self.gateway + path
        if query:
            url += "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
        headers = dict(self._headers(org))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            reply = self.http.request(method, url, body=data, headers=headers, retries=False,
                                      timeout=urllib3.Timeout(connect=5, read=60))
        except urllib3.exceptions.HTTPError as exc:
            raise DeployError(f"the OpenFaaS gateway at {self.gateway} could not be reached: {exc}") from exc
        if reply.status == 401:
            raise DeployError("the OpenFaaS gateway refused the credentials (401): check the "
                              f"{self.options.get('credentials') or 'credentials'!s} secret")
        text = reply.data.decode(errors="replace")
        try:
            return reply.status, json.loads(text) if text.strip() else None
        except ValueError:
            return reply.status, text

    def _expect(self, status: int, body: Any, ok: tuple[int, ...], doing: str) -> None:
        if status not in ok:
            detail = body if isinstance(body, str) else json.dumps(body)
            raise DeployError(f"the OpenFaaS gateway refused to {doing} ({status}): {str(detail).strip()[:300]}")

    def check(self, function: Function) -> None:
        """The credentials must be readable before the image is built."""
        self._auth.pop(function.org, None)  # a secret changed since: read it again
        self._headers(function.org)

    def deployment(self, function: Function, image: str) -> dict[str, Any]:
        """The FunctionDeployment body (the gateway's schema) for `function` on `image`."""
        scaling = function.scaling
        minimum = int(scaling.get("min_workers", 0))
        labels = {
            "com.openfaas.scale.min": str(max(1, minimum)),
            "com.openfaas.scale.max": str(max(1, int(scaling.get("max_workers", 1)))),
            "com.openfaas.scale.zero": "true" if minimum == 0 else "false",
            "org.dispatch.org": function.org,
            "org.dispatch.function": function.name,
        }
        body: dict[str, Any] = {
            "service": service_name(function),
            "image": image,
            "labels": labels,
            "annotations": {"org.dispatch.digest": function.digest},
            "envVars": {"PORT": "8080"},
        }
        if function.timeout:  # of-watchdog ends a request past it, so a stuck run frees its replica
            seconds = f"{function.timeout:g}s"
            body["envVars"].update({"exec_timeout": seconds, "write_timeout": seconds, "read_timeout": seconds})
        memory, cpu = function.resources.get("memory"), function.resources.get("cpu")
        if memory or cpu:
            limits: dict[str, str] = {}
            if memory:
                limits["memory"] = memory_text(int(memory))
                body["envVars"]["DISPATCH_MEMORY"] = str(int(memory))
            if cpu:
                limits["cpu"] = f"{float(cpu):g}"
            body["limits"] = limits
            body["requests"] = dict(limits)
        if self.namespace:
            body["namespace"] = self.namespace
        return body

    def status(self, function: Function) -> dict[str, Any] | None:
        """The gateway's FunctionStatus of the function, or None when it has none."""
        query = {"namespace": self.namespace} if self.namespace else None
        status, body = self._call("GET", f"/system/function/{service_name(function)}", function.org, query=query)
        if status == 404:
            return None
        self._expect(status, body, (200,), "describe the function")
        return body

    def scale(self, function: Function, replicas: int) -> None:
        """Ask the gateway for `replicas` replicas of the function."""
        body = {"serviceName": service_name(function), "namespace": self.namespace or "openfaas-fn",
                "replicas": int(replicas)}
        status, reply = self._call("POST", f"/system/scale-function/{service_name(function)}", function.org, body)
        self._expect(status, reply, (200, 202), "scale the function")

    # ------------------------------------------------------------------ FaaSDriver

    def deploy(self, function: Function, source: FunctionSource, artifact: FunctionImage,
               progress: Progress | None = None) -> None:
        body = self.deployment(function, artifact.reference)
        existing = self.status(function)
        if progress:
            progress(f"{'updating' if existing else 'deploying'} {body['service']} on OpenFaaS at {self.gateway}")
        if existing is None:
            status, reply = self._call("POST", "/system/functions", function.org, body)
            self._expect(status, reply, (200, 201, 202), "deploy the function")
        else:
            status, reply = self._call("PUT", "/system/functions", function.org, body)
            self._expect(status, reply, (200, 202), "update the function")
        minimum = int(function.scaling.get("min_workers", 0))
        if minimum > 1:
            self.scale(function, minimum)
        self._wait_available(function, artifact.reference)
        with self._lock:
            self._deployed[(function.org, function.name)] = function.digest

    def _wait_available(self, function: Function, image: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.05
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.status(function)
            if last and last.get("image") == image and (last.get("availableReplicas") or 0) >= 1:
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise DeployError(f"OpenFaaS did not make {service_name(function)} available within "
                          f"{self.ready_timeout:g}s (last status: {json.dumps(last)[:300]})")

    def forget(self, function: Function) -> None:
        with self._lock:
            self._deployed.pop((function.org, function.name), None)

    def undeploy(self, function: Function) -> None:
        with self._lock:
            self._deployed.pop((function.org, function.name), None)
        body: dict[str, Any] = {"functionName": service_name(function)}
        status, reply = self._call("DELETE", "/system/functions", function.org, body)
        self._expect(status, reply, (200, 202, 404), "remove the function")

    def is_deployed(self, function: Function) -> bool:
        return self._deployed.get((function.org, function.name)) == function.digest

    def execute(self, function: Function, jobs: list[Job], on_done: OutcomeSink | None = None) -> list[Outcome]:
        name = service_name(function)
        url = f"{self.gateway}/function/{name}" + (f".{self.namespace}" if self.namespace else "")
        headers = self._headers(function.org)
        outcomes: list[Outcome] = []
        for batch in batches(function, jobs):
            try:
                done = post_jobs(self.http, url, function, batch, headers, "the OpenFaaS gateway")
            except EngineDown:
                if outcomes:  # some ran: report them, fail the rest as the core does
                    return outcomes
                raise
            outcomes += done
            if on_done is not None:
                on_done(done)
        return outcomes

    def invoke_async(self, function: Function, jobs: list[Job], callback_url: str) -> int:
        """Queue the jobs on the gateway (`/async-function/{name}`); the pickled outcomes are
        POSTed to `callback_url` when they are done. The gateway's status code (202)."""
        import pickle

        from ..runtime.server import PICKLE_TYPE

        url = f"{self.gateway}/async-function/{service_name(function)}"
        headers = {**self._headers(function.org), "Content-Type": PICKLE_TYPE, "X-Callback-Url": callback_url}
        reply = self.http.request("POST", url, body=pickle.dumps(jobs, protocol=5), headers=headers, retries=False)
        return reply.status

    def close(self) -> None:
        self.http.clear()


__all__ = ["OpenFaasDriver", "memory_text", "service_name"]
