"""What a function becomes on Kubernetes: a Deployment of its image, a Service in front of it
and an autoscaling/v2 HorizontalPodAutoscaler, as plain manifests (dicts).

The kubernetes driver sends them to the API server; the tests validate them against the
official schemas (kubernetes-validate, strict) and run the Deployment and Service with
`podman kube play`. Every object carries the same labels, by which the driver finds and deletes
what it made.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..model import Function

PORT = 8080  # the runtime server's port in the image (runtime/server.py)
MANAGED_BY = "dispatch-kernel"
LABEL_FUNCTION = "dispatch.vmware.io/function"
LABEL_ORG = "dispatch.vmware.io/org"
ANNOTATION_DIGEST = "dispatch.vmware.io/digest"
DEFAULT_CPU_REQUEST = "100m"  # the HPA scales on CPU utilization, which needs a request
CPU_TARGET = 80  # average utilization (%) the HPA keeps
_DNS = re.compile(r"[^a-z0-9-]+")


def dns_name(text: str, limit: int = 63) -> str:
    """`text` as a DNS-1123 label: lower case, digits and '-', at most `limit` characters; a
    short hash keeps two names that read alike apart."""
    base = _DNS.sub("-", text.lower()).strip("-") or "x"
    if base == text and len(base) <= limit:
        return base
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{base[:limit - 9].strip('-')}-{digest}"


def label_value(text: str) -> str:
    """`text` as a label value (63 characters of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    if value == text and len(value) <= 63:
        return value
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{value[:54].strip('-_.')}-{digest}"


@dataclass
class Placement:
    """Where and how the driver puts functions: the namespace template and the pull secret."""

    namespace: str = "dispatch-{org}"  # one namespace per organization
    image_pull_secret: str = ""
    extra_labels: dict[str, str] = field(default_factory=dict)

    def namespace_of(self, function: Function) -> str:
        """The function's namespace."""
        return dns_name(self.namespace.format(org=function.org))


def object_name(function: Function) -> str:
    """The name of the function's Deployment, Service and HPA (unique in its namespace)."""
    return dns_name(f"fn-{function.name}", 53)  # room for the pods' generated suffixes


def selector(function: Function) -> dict[str, str]:
    """The labels that select the function's objects and pods."""
    return {"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_FUNCTION: label_value(function.name),
            LABEL_ORG: label_value(function.org)}


def quantity_memory(size: int) -> str:
    """Bytes as a Kubernetes quantity ("512Mi")."""
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def quantity_cpu(cores: float) -> str:
    """Cores as a Kubernetes quantity in millicores ("500m")."""
    return f"{max(1, round(cores * 1000))}m"


def replicas(function: Function) -> tuple[int, int]:
    """(min, max) replicas from the scaling settings; the HPA's floor is at least 1 (0 is the
    driver's idle scale-down, which an HPA leaves alone)."""
    scaling = function.scaling
    maximum = max(1, int(scaling.get("max_workers", 1)))
    minimum = min(maximum, max(1, int(scaling.get("min_workers", 0))))
    return minimum, maximum


def deployment(function: Function, image: str, placement: Placement) -> dict[str, Any]:
    """The function's Deployment: its image's runtime server with probes, resources and a
    rolling update that keeps the old pods until the new ones are ready."""
    labels = {**placement.extra_labels, **selector(function), "app.kubernetes.io/name": object_name(function)}
    memory, cpu = function.resources.get("memory"), function.resources.get("cpu")
    requests: dict[str, str] = {"cpu": quantity_cpu(float(cpu)) if cpu else DEFAULT_CPU_REQUEST}
    limits: dict[str, str] = {}
    env = [{"name": "PORT", "value": str(PORT)}, {"name": "HOST", "value": "0.0.0.0"}]
    if memory:
        requests["memory"] = limits["memory"] = quantity_memory(int(memory))
        env.append({"name": "DISPATCH_MEMORY", "value": str(int(memory))})
    if cpu:
        limits["cpu"] = quantity_cpu(float(cpu))
    container: dict[str, Any] = {
        "name": "function",
        "image": image,
        "imagePullPolicy": "IfNotPresent",  # the reference is pinned to its digest
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
        "readinessProbe": {"httpGet": {"path": "/_/ready", "port": "http"}, "periodSeconds": 2,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/_/health", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 3, "initialDelaySeconds": 5},
    }
    pod_spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 10}
    if placement.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": placement.image_pull_secret}]
    minimum, _ = replicas(function)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": object_name(function), "namespace": placement.namespace_of(function),
                     "labels": labels, "annotations": {ANNOTATION_DIGEST: function.digest}},
        "spec": {
            "replicas": minimum,
            "selector": {"matchLabels": selector(function)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": {ANNOTATION_DIGEST: function.digest}},
                "spec": pod_spec,
            },
        },
    }


def service(function: Function, placement: Placement) -> dict[str, Any]:
    """The Service in front of the function's pods (ClusterIP, port http)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": object_name(function), "namespace": placement.namespace_of(function),
                     "labels": {**placement.extra_labels, **selector(function)}},
        "spec": {"type": "ClusterIP", "selector": selector(function),
                 "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]},
    }


def autoscaler(function: Function, placement: Placement) -> dict[str, Any]:
    """The autoscaling/v2 HorizontalPodAutoscaler from min/max workers, on CPU utilization."""
    minimum, maximum = replicas(function)
    name = object_name(function)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": placement.namespace_of(function),
                     "labels": {**placement.extra_labels, **selector(function)}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_TARGET}}}],
        },
    }


def namespace(name: str) -> dict[str, Any]:
    """A Namespace the driver makes for an organization."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}}


def manifests(function: Function, image: str, placement: Placement) -> list[dict[str, Any]]:
    """Every object the function is made of, in the order they are applied."""
    return [deployment(function, image, placement), service(function, placement), autoscaler(function, placement)]


__all__ = ["ANNOTATION_DIGEST", "MANAGED_BY", "PORT", "Placement", "autoscaler", "deployment", "dns_name",
           "label_value", "manifests", "namespace", "object_name", "quantity_cpu", "quantity_memory",
           "replicas", "selector", "service"]
