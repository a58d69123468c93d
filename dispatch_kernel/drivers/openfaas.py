"""The OpenFaaS driver: a function is an OpenFaaS function of its own OCI image.

The image manager builds the function's image and pushes it to the registry; this driver
deploys it through the gateway's REST API (`POST /system/functions`, `PUT` to update, `DELETE`
to remove, `POST /system/scale-function/{name}` for the replica count) and sends runs to
`POST /function/{name}`. With a callback address configured, runs nobody waits on (spawned
runs, event runs) are queued instead on `POST /async-function/{name}`, and OpenFaaS's
queue-worker posts each answer back to this driver's receiver (drivers/callbacks.py), so no
connection is held through the gateway for the length of a run. The image's runtime server
(runtime/server.py) serves of-watchdog's http-mode contract: health on `/_/health`, requests
passed through to `/`, where it takes pickled jobs as the container driver sends them.

Options (`Settings.plugin_options["openfaas"]`):
- `gateway`: the gateway's URL (else $OPENFAAS_URL, else http://127.0.0.1:8080);
- `credentials`: the name of a Dispatch secret of the function's organization with keys
  `username` and `password`, sent as basic auth (OpenFaaS's `basic-auth` secret); none: no auth;
- `namespace`: the OpenFaaS namespace of functions (the provider's default when unset);
- `ready_timeout`: seconds deploy waits for a replica to be available (default 120);
- `callback`: HOST:PORT this driver listens on for the queue-worker's answers (port 0: any);
  unset, every run goes through `/function/{name}`;
- `callback_url`: the URL the queue-worker reaches that address at (default http://HOST:PORT).

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
from typing import Any, Callable
from urllib.parse import quote

from ..images.base import FunctionImage, Progress
from ..model import ConflictError, DeployError, Function
from ..packaging import FunctionSource
from ..runtime.protocol import Job, Outcome
from ..settings import Settings
from .base import FaaSDriver, OutcomeSink, Runs
from .callbacks import CallbackReceiver
from .pooled import failed_outcome
from .remote import CONNECT_TIMEOUT, EngineDown, batches, post_jobs

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
READY_TIMEOUT = 120.0
QUEUE_GRACE = 30.0  # seconds past a queued run's timeout its answer may take to come back
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


def _by_batch(function: Function, jobs: list[Job], on_done: OutcomeSink | None,
              run: Callable[[list[Job]], list[Outcome]]) -> list[Outcome]:
    """`run` each of the function's batches of `jobs` in turn, passing outcomes on as they come.
    When the gateway goes down after some ran, those are reported and the core fails the rest."""
    outcomes: list[Outcome] = []
    for batch in batches(function, jobs):
        try:
            done = run(batch)
        except EngineDown:
            if outcomes:
                return outcomes
            raise
        outcomes += done
        if on_done is not None:
            on_done(done)
    return outcomes


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
        listen = self.options.get("callback")
        self.receiver = CallbackReceiver(str(listen), str(self.options.get("callback_url") or "")) if listen else None

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
        if function.timeout:  # the runtime server exits past exec_timeout, so a stuck run frees its replica
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

    def _path(self, function: Function) -> str:
        return service_name(function) + (f".{self.namespace}" if self.namespace else "")

    def execute(self, function: Function, jobs: list[Job], on_done: OutcomeSink | None = None) -> list[Outcome]:
        url = f"{self.gateway}/function/{self._path(function)}"
        headers = self._headers(function.org)
        return _by_batch(function, jobs, on_done,
                         lambda batch: post_jobs(self.http, url, function, batch, headers, "the OpenFaaS gateway"))

    def cancel(self, function: Function, run_id: str) -> bool:
        """A run cannot be stopped on OpenFaaS: the gateway has no call that ends one request
        or one replica, so the caller is told why rather than left to guess."""
        raise ConflictError(f"run {run_id} runs on OpenFaaS, which cannot stop a running run (its gateway has no "
                            "call for it): it ends by itself, or at the function's timeout")

    def execute_queued(self, function: Function, jobs: list[Job],
                       on_done: OutcomeSink | None = None) -> list[Outcome]:
        """Runs nobody waits on, queued on `/async-function/{name}` and answered on this
        driver's callback receiver; through `/function/{name}` when no callback is configured."""
        if self.receiver is None:
            return self.execute(function, jobs, on_done)
        return _by_batch(function, jobs, on_done, lambda batch: self._run_queued(function, batch))

    def _run_queued(self, function: Function, jobs: list[Job]) -> list[Outcome]:
        from ..runtime.protocol import load_answer

        assert self.receiver is not None
        sent = time.monotonic()
        token, callback = self.receiver.expect()
        try:
            status = self.invoke_async(function, jobs, callback)
        except Exception:
            self.receiver.forget(token)
            raise
        if status != 202:
            self.receiver.forget(token)
            return [failed_outcome(jobs[0], sent, f"the OpenFaaS gateway refused to queue the run ({status})")]
        # Past its timeout the replica ends itself (exec_timeout) and the queue-worker posts
        # that failure; the grace covers the wait in the queue and the post back.
        limit = function.timeout + QUEUE_GRACE if function.timeout else None
        answer = self.receiver.wait(token, limit)
        timed_out = function.timeout is not None and time.monotonic() - sent >= function.timeout
        if answer is None:
            why = (f"the run timed out after {function.timeout:g}s (no answer from the OpenFaaS queue)" if timed_out
                   else "the driver closed before the OpenFaaS queue answered")
            return [failed_outcome(jobs[0], sent, why)]
        if answer.status != 200:
            text = answer.body[:300].decode(errors="replace").strip()
            why = (f"the run timed out after {function.timeout:g}s (its replica was ended past exec_timeout)"
                   if timed_out else f"the OpenFaaS queue-worker's call answered {answer.status}: {text}")
            return [failed_outcome(jobs[0], sent, why)]
        try:
            return load_answer(answer.body)
        except Exception as exc:
            return [failed_outcome(jobs[0], sent, f"the OpenFaaS queue-worker posted something other than "
                                                  f"outcomes: {exc}")]

    def invoke_async(self, function: Function, jobs: list[Job], callback_url: str) -> int:
        """Queue the jobs on the gateway (`/async-function/{name}`); the pickled outcomes are
        POSTed to `callback_url` when they are done. The gateway's status code (202);
        EngineDown when the gateway cannot be reached."""
        import pickle

        import urllib3

        from ..runtime.server import PICKLE_TYPE

        url = f"{self.gateway}/async-function/{self._path(function)}"
        headers = {**self._headers(function.org), "Content-Type": PICKLE_TYPE, "X-Callback-Url": callback_url}
        try:
            reply = self.http.request("POST", url, body=pickle.dumps(jobs, protocol=5), headers=headers,
                                      retries=False, timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=60))
        except urllib3.exceptions.HTTPError as exc:
            raise EngineDown(f"the OpenFaaS gateway at {self.gateway} could not be reached: {exc}") from exc
        return reply.status

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
        self.http.clear()


__all__ = ["OpenFaasDriver", "memory_text", "service_name"]
