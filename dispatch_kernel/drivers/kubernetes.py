"""The kubernetes driver: a function is a Deployment of its OCI image, a Service and a
HorizontalPodAutoscaler (drivers/kubernetes_manifests.py), in its organization's namespace.

The image manager builds and pushes the image; this driver applies the objects with the official
client (`kubernetes`), waits for the rollout, and sends runs to the pods' runtime server through
the Service: directly from inside the cluster (`http://NAME.NAMESPACE.svc:8080/`), or through
the API server's service proxy from outside (`/api/v1/namespaces/NS/services/NAME:http/proxy/`).
A redeploy replaces the Deployment, a rolling update that keeps old pods until new ones are
ready; delete removes every object carrying the function's labels. With min_workers 0 the
Deployment is scaled to zero after idle_timeout without runs (the HPA leaves a Deployment at
zero alone) and back to one on the next run.

Options (`Settings.plugin_options["kubernetes"]`):
- `kubeconfig`, `context`: the cluster to use (else $KUBECONFIG / ~/.kube/config); inside a pod
  the service account is used (or `in_cluster: true`);
- `namespace`: the namespace template, "dispatch-{org}" by default (one per organization);
- `image_pull_secret`: the name of a docker-registry Secret in that namespace, for a private
  registry;
- `access`: "service" or "proxy" (default: service inside the cluster, proxy outside);
- `ready_timeout`: seconds a rollout may take (default 300).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..images.base import FunctionImage, Progress
from ..model import DeployError, Function
from ..packaging import FunctionSource
from ..runtime.protocol import Job, Outcome
from ..settings import Settings
from . import kubernetes_manifests as manifests
from .base import FaaSDriver, OutcomeSink, Runs
from .remote import EngineDown, batches, post_jobs

log = logging.getLogger(__name__)

READY_TIMEOUT = 300.0
IDLE_CHECK = 5.0  # seconds between looks for functions idle long enough to scale to zero
OOM_REPORT_WAIT = 5.0  # seconds a failed run waits for the kubelet to say why its pod died
# Why a pod cannot start, in a container's waiting state: deploy stops waiting and says so.
_STUCK = ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "CreateContainerConfigError",
          "InvalidImageName", "CreateContainerError")


@dataclass
class _Placed:
    """A function this driver deployed: where, which revision, and when it last ran."""

    namespace: str
    name: str
    digest: str
    url: str
    minimum: int
    idle_timeout: float
    last_used: float
    scaled_to_zero: bool = False


class KubernetesDriver(FaaSDriver):
    """Functions as Deployments on a Kubernetes cluster."""

    name = "kubernetes"
    runs = Runs.IMAGE

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.placement = manifests.Placement(namespace=self.options.get("namespace") or "dispatch-{org}",
                                             image_pull_secret=self.options.get("image_pull_secret") or "")
        self.ready_timeout = float(self.options.get("ready_timeout") or READY_TIMEOUT)
        self._api: Any = None  # kubernetes.client.ApiClient, made on first use
        self._placed: dict[tuple[str, str], _Placed] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._idler: threading.Thread | None = None
        self._namespaces: set[str] = set()

    # ------------------------------------------------------------------ the cluster

    def api(self) -> Any:
        """The client of the configured cluster; DeployError when none is configured."""
        if self._api is not None:
            return self._api
        with self._lock:
            if self._api is None:
                self._api = self._connect()
        return self._api

    def _connect(self) -> Any:
        try:
            from kubernetes import client, config
        except ImportError as exc:
            raise DeployError("the kubernetes driver needs the kubernetes package "
                              "(pip install 'dispatch-kernel[kubernetes]')") from exc
        configuration = client.Configuration()
        in_cluster = self.options.get("in_cluster")
        if in_cluster is None:
            in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ and not self.options.get("kubeconfig")
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(config_file=self.options.get("kubeconfig"),
                                        context=self.options.get("context"), client_configuration=configuration)
        except Exception as exc:  # ConfigException, or a file that is not a kubeconfig
            raise DeployError(f"no Kubernetes cluster is configured for the kubernetes driver: {exc}") from exc
        self.access = self.options.get("access") or ("service" if in_cluster else "proxy")
        if self.access not in ("service", "proxy"):
            raise DeployError(f"the kubernetes driver's access must be service or proxy, not {self.access!r}")
        return client.ApiClient(configuration)

    def check(self, function: Function) -> None:
        """A cluster must be configured (its client made) before the image is built."""
        self.api()

    def _apis(self) -> tuple[Any, Any, Any]:
        from kubernetes import client

        api = self.api()
        return client.CoreV1Api(api), client.AppsV1Api(api), client.AutoscalingV2Api(api)

    def _auth_headers(self) -> dict[str, str]:
        settings = self.api().configuration.auth_settings()
        return {value["key"]: value["value"] for value in settings.values()
                if value.get("in") == "header" and value.get("value")}

    def url_of(self, namespace: str, name: str) -> str:
        """Where runs of the function's Service are sent."""
        if self.access == "service":
            return f"http://{name}.{namespace}.svc:{manifests.PORT}/"
        host = self.api().configuration.host.rstrip("/")
        return f"{host}/api/v1/namespaces/{namespace}/services/{name}:http/proxy/"

    # ------------------------------------------------------------------ applying objects

    def _ensure_namespace(self, core: Any, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        if namespace in self._namespaces:
            return
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                core.create_namespace(manifests.namespace(namespace))
            except ApiException as created:
                if created.status != 409:  # made meanwhile by another process
                    raise
        self._namespaces.add(namespace)

    @staticmethod
    def _apply(read: Any, create: Any, replace: Any, body: dict[str, Any]) -> None:
        """Create the object, or replace it (carrying its resourceVersion) when it exists."""
        from kubernetes.client.exceptions import ApiException

        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        try:
            current = read(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            create(namespace, body)
            return
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": current.metadata.resource_version}}
        replace(name, namespace, body)

    def deploy(self, function: Function, source: FunctionSource, artifact: FunctionImage,
               progress: Progress | None = None) -> None:
        from kubernetes.client.exceptions import ApiException

        core, apps, autoscaling = self._apis()
        deployment, service, hpa = manifests.manifests(function, artifact.reference, self.placement)
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        if progress:
            progress(f"applying Deployment, Service and HPA {namespace}/{name}")
        try:
            self._ensure_namespace(core, namespace)
            self._apply(apps.read_namespaced_deployment, apps.create_namespaced_deployment,
                        apps.replace_namespaced_deployment, deployment)
            self._apply(core.read_namespaced_service, core.create_namespaced_service,
                        self._replace_service(core), service)
            self._apply(autoscaling.read_namespaced_horizontal_pod_autoscaler,
                        autoscaling.create_namespaced_horizontal_pod_autoscaler,
                        autoscaling.replace_namespaced_horizontal_pod_autoscaler, hpa)
        except ApiException as exc:
            raise DeployError(f"the Kubernetes API refused {namespace}/{name}: {_api_message(exc)}") from exc
        if progress:
            progress(f"waiting for the rollout of {namespace}/{name}")
        self._wait_rolled_out(apps, core, function, namespace, name)
        minimum = int(function.scaling.get("min_workers", 0))
        with self._lock:
            self._placed[(function.org, function.name)] = _Placed(
                namespace, name, function.digest, self.url_of(namespace, name), minimum,
                float(function.scaling.get("idle_timeout", 300.0)), time.monotonic())
            if minimum == 0 and self._idler is None:
                self._idler = threading.Thread(target=self._idle_loop, daemon=True, name="dispatch-k8s-idle")
                self._idler.start()

    @staticmethod
    def _replace_service(core: Any) -> Any:
        def replace(name: str, namespace: str, body: dict[str, Any]) -> Any:
            # A Service's clusterIP is set by the cluster and cannot change: keep the one it has.
            current = core.read_namespaced_service(name, namespace)
            spec = {**body["spec"], "clusterIP": current.spec.cluster_ip} if current.spec.cluster_ip else body["spec"]
            return core.replace_namespaced_service(name, namespace, {**body, "spec": spec})
        return replace

    def _wait_rolled_out(self, apps: Any, core: Any, function: Function, namespace: str, name: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.05
        while time.monotonic() < deadline:
            current = apps.read_namespaced_deployment(name, namespace)
            spec, status = current.spec, current.status
            wanted = spec.replicas or 0
            if ((status.observed_generation or 0) >= (current.metadata.generation or 0)
                    and (status.updated_replicas or 0) >= wanted and (status.available_replicas or 0) >= wanted
                    and (status.replicas or 0) <= wanted):
                return
            stuck = self.pod_trouble(function, namespace)
            if stuck:
                raise DeployError(f"the pods of {namespace}/{name} cannot start: {stuck}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise DeployError(f"the rollout of {namespace}/{name} did not finish within {self.ready_timeout:g}s")

    def pod_trouble(self, function: Function, namespace: str, since: float | None = None) -> str:
        """Why the function's pods are failing, in words ("" when they are not): a container
        that was OOMKilled (after `since`, a time.time()), or one stuck waiting."""
        core = self._apis()[0]
        labels = ",".join(f"{k}={v}" for k, v in manifests.selector(function).items())
        try:
            pods = core.list_namespaced_pod(namespace, label_selector=labels).items
        except Exception as exc:  # a look for a reason must not hide the failure it explains
            log.debug("listing pods of %s: %s", function.name, exc)
            return ""
        memory = function.resources.get("memory")
        crashed = ""
        for pod in pods:
            for status in (pod.status.container_statuses or []) if pod.status else []:
                for state in (status.state, status.last_state):
                    ended = state.terminated if state else None
                    if ended is not None and ended.reason == "OOMKilled":
                        finished = ended.finished_at.timestamp() if isinstance(ended.finished_at, datetime) else None
                        if since is None or finished is None or finished >= since - 1:
                            limit = f" of {memory / (1 << 20):.0f} MiB" if memory else ""
                            return (f"pod {pod.metadata.name} was OOMKilled: its container exceeded its memory "
                                    f"limit{limit}")
                        continue
                    if ended is not None and since is not None and not crashed:
                        finished = ended.finished_at.timestamp() if isinstance(ended.finished_at, datetime) else None
                        if finished is None or finished >= since - 1:
                            crashed = (f"pod {pod.metadata.name}'s container ended with exit code {ended.exit_code}"
                                       f" ({ended.reason or 'Error'})")
                waiting = status.state.waiting if status.state else None
                if since is None and waiting is not None and waiting.reason in _STUCK:
                    return f"pod {pod.metadata.name}: {waiting.reason}: {waiting.message or ''}".strip()
        return crashed  # an OOM kill anywhere is the likelier cause, so it is looked for first

    def _why_failed(self, function: Function, namespace: str, since: float) -> str:
        """A failed run's cause from its pods, given the kubelet a moment to report it."""
        deadline = time.monotonic() + OOM_REPORT_WAIT
        while True:
            reason = self.pod_trouble(function, namespace, since=since)
            if reason or time.monotonic() >= deadline:
                return reason
            time.sleep(0.25)

    # ------------------------------------------------------------------ scaling

    def scale(self, function: Function, replicas: int) -> None:
        """Set the Deployment's replica count (the HPA moves it between its bounds when > 0)."""
        placed = self._placed.get((function.org, function.name))
        namespace = placed.namespace if placed else self.placement.namespace_of(function)
        name = placed.name if placed else manifests.object_name(function)
        apps = self._apis()[1]
        apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": int(replicas)}})
        if placed is not None:
            placed.scaled_to_zero = replicas == 0

    def _wake(self, function: Function, placed: _Placed) -> None:
        with self._lock:
            if not placed.scaled_to_zero:
                return
            core, apps, _ = self._apis()
            apps.patch_namespaced_deployment_scale(placed.name, placed.namespace, {"spec": {"replicas": 1}})
            self._wait_rolled_out(apps, core, function, placed.namespace, placed.name)
            placed.scaled_to_zero = False

    def _idle_loop(self) -> None:
        while not self._closed.wait(IDLE_CHECK):
            now = time.monotonic()
            for placed in list(self._placed.values()):
                if placed.minimum == 0 and not placed.scaled_to_zero and now - placed.last_used > placed.idle_timeout:
                    try:
                        apps = self._apis()[1]
                        apps.patch_namespaced_deployment_scale(placed.name, placed.namespace, {"spec": {"replicas": 0}})
                        placed.scaled_to_zero = True
                    except Exception as exc:
                        log.warning("scaling %s/%s to zero: %s", placed.namespace, placed.name, exc)

    # ------------------------------------------------------------------ FaaSDriver

    def forget(self, function: Function) -> None:
        with self._lock:
            self._placed.pop((function.org, function.name), None)

    def undeploy(self, function: Function) -> None:
        from kubernetes.client.exceptions import ApiException

        with self._lock:
            placed = self._placed.pop((function.org, function.name), None)
        try:
            core, apps, autoscaling = self._apis()
        except DeployError:
            if placed is None:
                return  # never deployed here and no cluster: nothing to remove
            raise
        namespace = placed.namespace if placed else self.placement.namespace_of(function)
        labels = ",".join(f"{k}={v}" for k, v in manifests.selector(function).items())
        kinds = [(autoscaling.list_namespaced_horizontal_pod_autoscaler,
                  autoscaling.delete_namespaced_horizontal_pod_autoscaler),
                 (core.list_namespaced_service, core.delete_namespaced_service),
                 (apps.list_namespaced_deployment, apps.delete_namespaced_deployment)]
        for listing, delete in kinds:
            try:
                for item in listing(namespace, label_selector=labels).items:
                    delete(item.metadata.name, namespace, propagation_policy="Foreground")
            except ApiException as exc:
                if exc.status != 404:
                    raise DeployError(f"removing {function.name} from {namespace}: {_api_message(exc)}") from exc

    def is_deployed(self, function: Function) -> bool:
        placed = self._placed.get((function.org, function.name))
        return placed is not None and placed.digest == function.digest and not self._closed.is_set()

    def execute(self, function: Function, jobs: list[Job], on_done: OutcomeSink | None = None) -> list[Outcome]:
        placed = self._placed.get((function.org, function.name))
        if placed is None:
            raise EngineDown(f"{function.name} is not deployed on this Kubernetes driver")
        placed.last_used = time.monotonic()
        if placed.scaled_to_zero:
            self._wake(function, placed)
        http = self.api().rest_client.pool_manager
        headers = self._auth_headers() if self.access == "proxy" else {}
        where = "the API server's service proxy" if self.access == "proxy" else f"Service {placed.namespace}/{placed.name}"
        outcomes: list[Outcome] = []
        for batch in batches(function, jobs):
            started = time.time()
            try:
                done = post_jobs(http, placed.url, function, batch, headers, where,
                                 lambda: self._why_failed(function, placed.namespace, started))
            except EngineDown:
                if outcomes:
                    return outcomes
                raise
            outcomes += done
            if on_done is not None:
                on_done(done)
        placed.last_used = time.monotonic()
        return outcomes

    def close(self) -> None:
        self._closed.set()
        if self._api is not None:
            self._api.close()


def _api_message(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except Exception:
        return f"{exc.status} {exc.reason}"


__all__ = ["KubernetesDriver"]
