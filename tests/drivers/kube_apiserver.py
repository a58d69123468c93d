"""A stand-in for a Kubernetes API server, for tests: no cluster can run here.

It is checked against Kubernetes' own schemas: every object the driver creates or replaces,
and every scale it asks for, is validated strictly with kubernetes-validate (for Kubernetes
1.29), and refused with a 422 Status naming the problem, as the API server would. It keeps the
objects (uid, resourceVersion with optimistic concurrency, generation, a Service's clusterIP
that cannot change), answers list calls by label selector, and plays the parts of a cluster the
driver depends on with real containers: a Deployment's pods are podman containers of its image
(rolled over new-before-old on a change of the pod template), their status is read from the
engine (a container killed over its memory limit is OOMKilled), and the service proxy passes
requests to a ready pod the Service selects. Requests must carry the kubeconfig's token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Any

import kubernetes_validate
from tornado import httpclient, web
from tornado.httpserver import HTTPServer

VERSION = "1.29.0"
MAX_PODS = 3  # per Deployment: enough to see scaling, few enough for two cores
KINDS = {  # URL plural -> (group path, kind)
    "deployments": ("/apis/apps/v1", "Deployment"),
    "services": ("/api/v1", "Service"),
    "horizontalpodautoscalers": ("/apis/autoscaling/v2", "HorizontalPodAutoscaler"),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure" if code >= 400 else "Success",
            "message": message, "reason": reason, "code": code}


def _selected(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class Pod:
    """One pod of a Deployment: a podman container on a port of 127.0.0.1."""

    def __init__(self, container: Any, port: int, name: str, labels: dict[str, str], template_hash: str) -> None:
        self.container, self.port, self.name = container, port, name
        self.labels, self.template_hash = labels, template_hash
        self.created = _now()
        self.restarts = 0
        self.last_state: dict[str, Any] = {}

    def container_state(self) -> dict[str, Any]:
        """The container's state as a kubelet reports it (terminated: exit code and reason)."""
        try:
            self.container.reload()
            state = self.container.attrs.get("State") or {}
        except Exception:
            return {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": _now()}}
        if state.get("Status") == "running":
            return {"running": {"startedAt": _now()}}
        memory = (self.container.attrs.get("HostConfig") or {}).get("Memory")
        code = state.get("ExitCode", 1)
        # The engine flags only its init process; a kill by the cgroup's OOM killer is 137.
        oom = state.get("OOMKilled") or (code == 137 and bool(memory))
        return {"terminated": {"exitCode": code, "reason": "OOMKilled" if oom else "Error", "finishedAt": _now()}}

    def status(self) -> dict[str, Any]:
        state = self.container_state()
        ready = "running" in state and self.ready()
        return {"phase": "Running" if ready else "Pending",
                "containerStatuses": [{"name": "function", "ready": ready, "restartCount": self.restarts,
                                       "image": "", "imageID": "", "state": state, "lastState": self.last_state}]}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_/ready", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception:
            pass


class FakeApiServer:
    """The API server on 127.0.0.1 with its objects, pods and the requests it refused."""

    def __init__(self, docker_host: str, engine_options: dict[str, Any], token: str = "test-token",
                 pod_environment: dict[str, str] | None = None) -> None:
        import docker

        self.engine = docker.DockerClient(base_url=docker_host, timeout=120)
        self.engine_options = engine_options
        self.pod_environment = dict(pod_environment or {})  # set in every pod (a test's knob)
        self.token = token
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name)
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], list[Pod]] = {}  # (namespace, deployment) -> pods
        self.refused: list[str] = []
        self.deleted_pods: list[str] = []  # names of pods deleted through the API
        self.requests: list[tuple[str, str]] = []
        self._versions = itertools.count(1)
        self._lock = threading.RLock()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-kube-apiserver")

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for this server (token auth)."""
        return {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "tester", "user": {"token": self.token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}]}

    # ------------------------------------------------------------------ lifetime

    def start(self) -> FakeApiServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the fake API server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        for pods in self.pods.values():
            for pod in pods:
                pod.remove()
        self.engine.close()

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        ns = r"/api/v1/namespaces/([^/]+)"
        app = web.Application([
            (r"/api/v1/namespaces", _Namespaces, {"server": self}),
            (ns, _Namespace, {"server": self}),
            (ns + r"/pods", _Pods, {"server": self}),
            (ns + r"/pods/([^/:]+)", _Pod, {"server": self}),
            (ns + r"/pods/([^/:]+)(?::([^/]+))?/proxy/(.*)", _PodProxy, {"server": self}),
            (ns + r"/services/([^/:]+):([^/]+)/proxy/(.*)", _Proxy, {"server": self}),
            (r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale", _Scale, {"server": self}),
            (r"(/api/v1|/apis/apps/v1|/apis/autoscaling/v2)/namespaces/([^/]+)/([a-z]+)", _Collection,
             {"server": self}),
            (r"(/api/v1|/apis/apps/v1|/apis/autoscaling/v2)/namespaces/([^/]+)/([a-z]+)/([^/]+)", _Object,
             {"server": self}),
        ])
        server = HTTPServer(app, max_body_size=64 << 20)
        server.listen(self.port, "127.0.0.1")
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.stop()
            self._loop.close()

    # ------------------------------------------------------------------ objects

    def check(self, body: Any) -> str | None:
        """What is wrong with an object, by the official schema (None: valid)."""
        try:
            kubernetes_validate.validate(body, VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(map(str, exc.caught.absolute_path)) if getattr(exc, "caught", None) else ""
            problem = f"{body.get('kind')} {where}: {exc.caught.message if getattr(exc, 'caught', None) else exc}"
            self.refused.append(problem)
            return problem
        except Exception as exc:  # an unknown kind or apiVersion
            self.refused.append(str(exc))
            return str(exc)
        return None

    def stamp(self, body: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
        metadata = body.setdefault("metadata", {})
        metadata["resourceVersion"] = str(next(self._versions))
        metadata["uid"] = before["metadata"]["uid"] if before else str(uuid.uuid4())
        metadata["creationTimestamp"] = before["metadata"]["creationTimestamp"] if before else _now()
        if body["kind"] == "Deployment":
            changed = before is None or before["spec"] != body["spec"]
            metadata["generation"] = (before["metadata"].get("generation", 0) if before else 0) + (1 if changed else 0)
            body["status"] = dict(before.get("status") or {}) if before else {}
        if body["kind"] == "Service":
            body["spec"].setdefault("clusterIP", f"10.96.{len(self.objects) % 250}.{next(self._versions) % 250 + 1}")
        return body

    def check_delete_options(self, body: Any) -> str | None:
        """What is wrong with a DELETE's body, by the official DeleteOptions schema (None:
        valid). kubernetes-validate finds schemas by kind and apiVersion, and DeleteOptions is
        filed under meta/v1, which is no apiVersion: its schema is read directly."""
        import jsonschema
        from kubernetes_validate.utils import schema_contents
        from referencing import Registry, Resource

        folder = f"kubernetes-json-schema/v{VERSION}-local-strict"
        schema = schema_contents(f"{folder}/deleteoptions-meta-v1.json", VERSION)
        registry = Resource.from_contents(schema) @ Registry()
        registry = Resource.from_contents(schema_contents(f"{folder}/_definitions.json", VERSION)) @ registry
        try:
            jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(body)
        except jsonschema.ValidationError as exc:
            problem = f"DeleteOptions {'/'.join(map(str, exc.absolute_path))}: {exc.message}"
            self.refused.append(problem)
            return problem
        return None

    def find_pod(self, namespace: str, name: str) -> tuple[str, Pod] | None:
        """A pod by name, with the Deployment it belongs to."""
        for (space, deployment), pods in list(self.pods.items()):
            for pod in pods:
                if space == namespace and pod.name == name:
                    return deployment, pod
        return None

    def delete_pod(self, namespace: str, deployment: str, pod: Pod) -> None:
        """The kubelet ends the pod's container; the ReplicaSet controller then starts one in
        its place (reconcile, on a thread of its own, as a controller runs)."""
        with self._lock:
            pods = self.pods.get((namespace, deployment), [])
            if pod in pods:
                pods.remove(pod)
            pod.remove()
            self.deleted_pods.append(pod.name)
        threading.Thread(target=self.reconcile, args=(namespace, deployment), daemon=True).start()

    # ------------------------------------------------------------------ the controllers

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring a Deployment's pods to its spec, new pods before old ones go; then its status."""
        with self._lock:
            deployment = self.objects.get(("deployments", namespace, name))
            pods = self.pods.setdefault((namespace, name), [])
            if deployment is None:
                for pod in pods:
                    pod.remove()
                pods.clear()
                return
            template = deployment["spec"]["template"]
            template_hash = json.dumps(template, sort_keys=True)
            wanted = min(MAX_PODS, int(deployment["spec"].get("replicas", 1)))
            current = [pod for pod in pods if pod.template_hash == template_hash]
            stale = [pod for pod in pods if pod.template_hash != template_hash]
            for pod in current:  # the kubelet restarts a dead container, keeping why it died
                state = pod.container_state()
                if "terminated" in state:
                    pod.remove()
                    fresh = self._start_pod(namespace, name, template, template_hash)
                    pod.container, pod.port = fresh.container, fresh.port
                    pod.restarts += 1
                    pod.last_state = state
            while len(current) < wanted:
                current.append(self._start_pod(namespace, name, template, template_hash))
            for pod in stale + current[wanted:]:
                pod.remove()
            pods[:] = current[:wanted]
            ready = sum(1 for pod in pods if pod.ready())
            deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"],
                                    "replicas": len(pods), "updatedReplicas": len(pods),
                                    "readyReplicas": ready, "availableReplicas": ready}

    def _start_pod(self, namespace: str, name: str, template: dict[str, Any], template_hash: str) -> Pod:
        spec = template["spec"]["containers"][0]
        port = _free_port()
        environment = {e["name"]: e.get("value", "") for e in spec.get("env", [])}
        environment.update({"PORT": str(port), "HOST": "127.0.0.1", **self.pod_environment})
        kwargs: dict[str, Any] = {"detach": True, "init": True, "network_mode": "host", "environment": environment,
                                  "name": f"fake-k8s-{name}-{port}", "labels": {"fake-k8s": f"{namespace}.{name}"}}
        memory = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        if memory:
            factor = {"Gi": 1 << 30, "Mi": 1 << 20, "Ki": 1 << 10}.get(memory[-2:], 1)
            kwargs["mem_limit"] = kwargs["memswap_limit"] = int(memory[:-2] if factor > 1 else memory) * factor
        kwargs.update(self.engine_options)
        self.engine.images.pull(spec["image"])
        container = self.engine.containers.run(spec["image"], **kwargs)
        pod = Pod(container, port, f"{name}-{uuid.uuid4().hex[:5]}", dict(template["metadata"]["labels"]),
                  template_hash)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not pod.ready():  # the readiness probe, as a kubelet runs it
            time.sleep(0.05)
        return pod

    def pod_for(self, namespace: str, service_name: str) -> Pod | None:
        service = self.objects.get(("services", namespace, service_name))
        if service is None:
            return None
        selector = service["spec"].get("selector") or {}
        for (space, _), pods in self.pods.items():
            for pod in pods:
                if space == namespace and all(pod.labels.get(k) == v for k, v in selector.items()) and pod.ready():
                    return pod
        return None


class _Handler(web.RequestHandler):
    def initialize(self, server: FakeApiServer) -> None:
        self.server = server

    def prepare(self) -> None:
        self.server.requests.append((self.request.method, self.request.path))
        if self.request.headers.get("Authorization") != f"Bearer {self.server.token}":
            self.reply(_status(401, "Unauthorized", "Unauthorized"), 401)

    def reply(self, body: dict[str, Any], code: int = 200) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def body(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.request.body)
        except ValueError:
            self.reply(_status(400, "BadRequest", "the body is not JSON"), 400)
            return None

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class _Namespaces(_Handler):
    def post(self) -> None:
        body = self.body()
        if body is None:
            return
        problem = self.server.check(body)
        if problem:
            return self.reply(_status(422, "Invalid", problem), 422)
        name = body["metadata"]["name"]
        if name in self.server.namespaces:
            return self.reply(_status(409, "AlreadyExists", f'namespaces "{name}" already exists'), 409)
        body.setdefault("status", {"phase": "Active"})
        self.server.namespaces[name] = body
        self.reply(body, 201)


class _Namespace(_Handler):
    def get(self, name: str) -> None:
        if name not in self.server.namespaces:
            return self.reply(_status(404, "NotFound", f'namespaces "{name}" not found'), 404)
        self.reply(self.server.namespaces[name])


class _Collection(_Handler):
    def get(self, group: str, namespace: str, plural: str) -> None:
        selector = self.get_query_argument("labelSelector", None)
        items = [body for (kind, space, _), body in sorted(self.server.objects.items())
                 if kind == plural and space == namespace and _selected(body["metadata"].get("labels") or {}, selector)]
        self.reply({"apiVersion": group.rsplit("/", 2)[-2] + "/" + group.rsplit("/", 1)[-1] if "apis" in group else "v1",
                    "kind": KINDS[plural][1] + "List", "metadata": {"resourceVersion": "1"}, "items": items})

    async def post(self, group: str, namespace: str, plural: str) -> None:
        body = self.body()
        if body is None:
            return
        if namespace not in self.server.namespaces:
            return self.reply(_status(404, "NotFound", f'namespaces "{namespace}" not found'), 404)
        problem = self.server.check(body)
        if problem:
            return self.reply(_status(422, "Invalid", problem), 422)
        key = (plural, namespace, body["metadata"]["name"])
        if key in self.server.objects:
            return self.reply(_status(409, "AlreadyExists", f'{plural} "{key[2]}" already exists'), 409)
        self.server.objects[key] = self.server.stamp(body, None)
        if plural == "deployments":
            await self.in_thread(self.server.reconcile, namespace, key[2])
        self.reply(self.server.objects[key], 201)


class _Object(_Handler):
    def get(self, group: str, namespace: str, plural: str, name: str) -> None:
        body = self.server.objects.get((plural, namespace, name))
        if body is None:
            return self.reply(_status(404, "NotFound", f'{plural} "{name}" not found'), 404)
        if plural == "deployments":  # the controller's view, as of now
            self.server.reconcile(namespace, name)
        self.reply(body)

    async def put(self, group: str, namespace: str, plural: str, name: str) -> None:
        body = self.body()
        if body is None:
            return
        before = self.server.objects.get((plural, namespace, name))
        if before is None:
            return self.reply(_status(404, "NotFound", f'{plural} "{name}" not found'), 404)
        problem = self.server.check(body)
        if problem:
            return self.reply(_status(422, "Invalid", problem), 422)
        if body["metadata"].get("resourceVersion") != before["metadata"]["resourceVersion"]:
            return self.reply(_status(409, "Conflict", "the object has been modified"), 409)
        if plural == "services" and body["spec"].get("clusterIP", before["spec"]["clusterIP"]) != before["spec"]["clusterIP"]:
            return self.reply(_status(422, "Invalid", "spec.clusterIP: Invalid value: field is immutable"), 422)
        if plural == "deployments" and body["spec"]["selector"] != before["spec"]["selector"]:
            return self.reply(_status(422, "Invalid", "spec.selector: Invalid value: field is immutable"), 422)
        self.server.objects[(plural, namespace, name)] = self.server.stamp(body, before)
        if plural == "deployments":
            await self.in_thread(self.server.reconcile, namespace, name)
        self.reply(self.server.objects[(plural, namespace, name)])

    async def delete(self, group: str, namespace: str, plural: str, name: str) -> None:
        body = self.server.objects.pop((plural, namespace, name), None)
        if body is None:
            return self.reply(_status(404, "NotFound", f'{plural} "{name}" not found'), 404)
        if plural == "deployments":
            await self.in_thread(self.server.reconcile, namespace, name)
        # As the API server does: a deleted Service comes back as itself, other kinds as a Status.
        self.reply(body if plural == "services" else _status(200, "", f'{plural} "{name}" deleted'))


class _Scale(_Handler):
    async def patch(self, namespace: str, name: str) -> None:
        body = self.body()
        if body is None:
            return
        deployment = self.server.objects.get(("deployments", namespace, name))
        if deployment is None:
            return self.reply(_status(404, "NotFound", f'deployments.apps "{name}" not found'), 404)
        scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name, "namespace": namespace},
                 "spec": {**{"replicas": deployment["spec"].get("replicas", 1)}, **(body.get("spec") or {})}}
        extra = set(body) - {"spec"}
        problem = self.server.check(scale) or (f"Scale: unknown fields {sorted(extra)}" if extra else None)
        if problem:
            return self.reply(_status(422, "Invalid", problem), 422)
        deployment["spec"]["replicas"] = scale["spec"]["replicas"]
        deployment["metadata"]["generation"] += 1
        await self.in_thread(self.server.reconcile, namespace, name)
        scale["status"] = {"replicas": deployment["status"].get("replicas", 0)}
        self.reply(scale)


class _Pods(_Handler):
    def get(self, namespace: str) -> None:
        selector = self.get_query_argument("labelSelector", None)
        items = []
        for (space, _), pods in list(self.server.pods.items()):
            for pod in pods:
                if space == namespace and _selected(pod.labels, selector):
                    items.append(_pod_object(namespace, pod))
        self.reply({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items})


def _pod_object(namespace: str, pod: Pod) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": namespace, "labels": pod.labels,
                         "creationTimestamp": pod.created},
            "spec": {"containers": [{"name": "function", "image": "x"}]},
            "status": {**pod.status(), "podIP": "127.0.0.1"}}


class _Pod(_Handler):
    def delete(self, namespace: str, name: str) -> None:
        """DELETE .../pods/{name}: an optional DeleteOptions body; the Pod in the answer."""
        if self.request.body:
            body = self.body()
            if body is None:
                return
            problem = self.server.check_delete_options(body)
            if problem:
                return self.reply(_status(422, "Invalid", problem), 422)
        found = self.server.find_pod(namespace, name)
        if found is None:
            return self.reply(_status(404, "NotFound", f'pods "{name}" not found'), 404)
        answer = _pod_object(namespace, found[1])
        self.server.delete_pod(namespace, *found)
        self.reply(answer)


class _PodProxy(_Handler):
    async def get(self, namespace: str, name: str, port: str | None, rest: str) -> None:
        """GET .../pods/{name}[:{port}]/proxy/{path}: passed to the pod's container port."""
        found = self.server.find_pod(namespace, name)
        if found is None:
            return self.reply(_status(404, "NotFound", f'pods "{name}" not found'), 404)
        deployment, pod = found
        template = self.server.objects[("deployments", namespace, deployment)]["spec"]["template"]
        declared = {str(p.get(key)) for c in template["spec"]["containers"] for p in c.get("ports", [])
                    for key in ("containerPort", "name")}
        if port is not None and port not in declared:
            self.set_status(503)
            return self.finish(f"error trying to reach service: dial tcp 127.0.0.1:{port}: connect: connection refused")
        reply = await httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{pod.port}/{rest}", raise_error=False,
                                                         request_timeout=30)
        self.set_status(reply.code if reply.code != 599 else 503)
        self.finish(reply.body or (str(reply.error).encode() if reply.error else b""))


class _Proxy(_Handler):
    async def post(self, namespace: str, service: str, port: str, rest: str) -> None:
        for (kind, space, name) in list(self.server.objects):
            if kind == "deployments" and space == namespace:
                await self.in_thread(self.server.reconcile, namespace, name)
        pod = self.server.pod_for(namespace, service)
        if pod is None:
            self.set_status(503)
            return self.finish(f'no endpoints available for service "{service}"')
        try:
            reply = await httpclient.AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{pod.port}/{rest}", method="POST", body=self.request.body, raise_error=False,
                headers={"Content-Type": self.request.headers.get("Content-Type", "")}, request_timeout=600)
        except Exception as exc:  # the pod went away mid-request, as the API server words it
            self.set_status(503)
            return self.finish(f"error trying to reach service: {exc}")
        self.set_status(reply.code if reply.code != 599 else 503)
        self.finish(reply.body or (str(reply.error).encode() if reply.error else b""))


__all__ = ["FakeApiServer"]
