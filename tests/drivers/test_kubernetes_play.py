"""The kubernetes driver's manifests, checked two ways with real tools:

- every manifest, for functions of every shape, validated strictly against the official schemas
  of Kubernetes 1.29 and of the newest release kubernetes-validate knows;
- the Deployment and Service of a function run by `podman kube play` from the image the OCI
  builder pushed to the local registry, and a run sent to the pod answers.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import time
import urllib.request

import kubernetes_validate
import pytest
import yaml

from dispatch_kernel.drivers.kubernetes_manifests import Placement, manifests, namespace
from dispatch_kernel.model import Function
from dispatch_kernel.packaging import package
from dispatch_kernel.runtime.protocol import Job, load_answer
from dispatch_kernel.runtime.server import PICKLE_TYPE
from dispatch_kernel.settings import Settings
from tests.containers_support import free_port, image_options

import dispatch_kernel as dk

VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]

SHAPES = [
    {},
    {"resources": {"memory": 512 << 20, "cpu": 0.5}, "scaling": {"min_workers": 2, "max_workers": 20}},
    {"resources": {"memory": 1000}, "scaling": {"min_workers": 0, "max_workers": 1}},
    {"name": "Score_V2.final", "org": "Team.Data"},
]


def _function(**fields) -> Function:
    base = {"name": "score", "org": "default", "digest": "d" * 64}
    return Function(**{**base, **fields})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_strictly(shape, version):
    placement = Placement(namespace="fn-{org}", image_pull_secret="registry-login")
    objects = manifests(_function(**shape), "registry.example:5000/dispatch/fn@sha256:" + "a" * 64, placement)
    objects.append(namespace(placement.namespace_of(_function(**shape))))
    for manifest in objects:
        assert kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_validation_catches_a_mistake():
    deployment = manifests(_function(), "x", Placement())[0]
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(wrong, VERSIONS[0], strict=True)


def test_scaling_and_resources_reach_the_objects():
    function = _function(resources={"memory": 512 << 20, "cpu": 0.5}, scaling={"min_workers": 0, "max_workers": 20})
    deployment, service, hpa = manifests(function, "img", Placement(namespace="dispatch-{org}"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert container["readinessProbe"]["httpGet"]["path"] == "/_/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_/health"
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 20
    assert deployment["metadata"]["namespace"] == "dispatch-default" == service["metadata"]["namespace"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def add(x, y):
    return x + y


@pytest.mark.timeout(600)
def test_podman_kube_play_runs_the_deployment_and_a_run_answers(home, registry, podman_service, python_base, tmp_path):
    settings = Settings(home=home, plugin_options=image_options(registry.address, python_base))
    with dk.connect(settings=settings) as client:
        source = package(add)
        function = Function(name="kp-add", handler=source.handler, convention=source.convention,
                            requirements=source.requirements, digest="e" * 64,
                            resources={"memory": 256 << 20}, scaling={"min_workers": 1, "max_workers": 2})
        image = client.dispatch.images.function_image(function, source)
    deployment, service, _hpa = manifests(function, image.reference, Placement())
    for manifest in (deployment, service):
        kubernetes_validate.validate(manifest, VERSIONS[0], strict=True)
    # What a node's Service proxy would do, podman does by publishing the pod's port: on a free
    # port of 127.0.0.1 (a hostPort, the one addition to what the driver sends).
    port = free_port()
    played = copy.deepcopy(deployment)
    played["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    kubernetes_validate.validate(played, VERSIONS[0], strict=True)
    document = tmp_path / "function.yaml"
    document.write_text(yaml.safe_dump_all([played, service]))
    env = {**os.environ, **podman_service.env}
    command = ["podman", "kube", "play", "--tls-verify=false", str(document)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    try:
        assert result.returncode == 0, result.stderr
        body = pickle.dumps([Job("run-1", (20, 22), {}, None, True)], protocol=5)
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST",
                                                 headers={"Content-Type": PICKLE_TYPE})
                with urllib.request.urlopen(request, timeout=10) as reply:
                    answer = load_answer(reply.read())
            except OSError:
                time.sleep(0.2)
        assert answer is not None, "the pod never answered"
        assert answer[0].error is None and json.loads(answer[0].output) == 42
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_/ready", timeout=10) as reply:
            assert reply.status == 200
        inspect = subprocess.run(["podman", "pod", "ps", "--format", "json"], env=env, capture_output=True,
                                 text=True, timeout=60)
        pods = json.loads(inspect.stdout or "[]")
        assert any(pod["Name"].startswith(deployment["metadata"]["name"]) for pod in pods), pods
    finally:
        subprocess.run(["podman", "kube", "down", str(document)], env=env, capture_output=True, timeout=120)
