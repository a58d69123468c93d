"""The kubernetes driver's API calls, against a fake API server that validates every object
against Kubernetes' schemas, keeps them, and runs the pods with podman
(tests/drivers/kube_apiserver.py). Runs travel through the API server's service proxy, as they
do from outside a cluster.

With DISPATCH_TEST_REAL_CLUSTER=1 the same tests run against the cluster of $KUBECONFIG instead,
building images on $DISPATCH_TEST_BASE_IMAGE and pushing them to $DISPATCH_TEST_REGISTRY (a
registry the cluster pulls from); what only the fake can show is then skipped. See the README.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest
import yaml

import dispatch_kernel as dk
import dispatch_kernel.drivers.kubernetes as kubernetes_driver
from dispatch_kernel.settings import Settings
from tests.containers_support import ENGINE_OPTIONS, image_options

from .kube_apiserver import FakeApiServer

pytestmark = pytest.mark.timeout(600)
REAL = os.environ.get("KUBECONFIG") if os.environ.get("DISPATCH_TEST_REAL_CLUSTER") else None
NAMESPACE = "dispatch-default"


@pytest.fixture(scope="module")
def apiserver(podman_service, registry):
    if REAL:
        yield None
        return
    fake = FakeApiServer(podman_service.url, ENGINE_OPTIONS).start()
    yield fake
    fake.stop()


@pytest.fixture
def kubeconfig(apiserver, tmp_path):
    if apiserver is None:
        return REAL
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(apiserver.kubeconfig()))
    return str(path)


def _settings(home, registry, python_base, kubeconfig, **options):
    if REAL:
        registry_address = os.environ["DISPATCH_TEST_REGISTRY"]
        python_base = os.environ["DISPATCH_TEST_BASE_IMAGE"]
    else:
        registry_address = registry.address
    plugin_options = {**image_options(registry_address, python_base),
                      "kubernetes": {"kubeconfig": kubeconfig, "ready_timeout": 120, **options}}
    return Settings(home=home, driver="kubernetes", plugin_options=plugin_options)


@pytest.fixture
def client(home, registry, python_base, kubeconfig):
    with dk.connect(settings=_settings(home, registry, python_base, kubeconfig)) as the_client:
        yield the_client


def add(x, y):
    print("adding", x, y)
    return x + y


def add_more(x, y):
    return x + y + 100


def allocate(mib):
    import ctypes

    blocks = []
    for _ in range(mib):  # touched page by page, so the cgroup's limit is what stops it
        block = ctypes.create_string_buffer(1 << 20)
        blocks.append(block)
    return len(blocks)


def test_deploy_applies_three_valid_objects_and_a_run_answers_through_the_proxy(client, apiserver):
    fn = client.deploy(add, name="k-add", memory="256M", cpu=0.5, min_workers=1, max_workers=4)
    function = fn.refresh()
    assert function.status == "READY" and function.driver_status["kubernetes"]["status"] == "READY"
    run = fn.spawn(2, 3).wait(120)
    assert run.status == "SUCCEEDED" and run.output == 5 and run.driver == "kubernetes"
    assert run.logs["stdout"] == "adding 2 3\n"
    assert list(fn.map([(1, 1), (2, 2)])) == [2, 4]
    with pytest.raises(dk.RunFunctionError, match="TypeError"):
        fn("a", 1)
    if apiserver is None:
        return
    assert apiserver.refused == []
    kinds = sorted(plural for plural, space, name in apiserver.objects if space == NAMESPACE and name == "fn-k-add")
    assert kinds == ["deployments", "horizontalpodautoscalers", "services"]
    hpa = apiserver.objects[("horizontalpodautoscalers", NAMESPACE, "fn-k-add")]
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4
    container = apiserver.objects[("deployments", NAMESPACE, "fn-k-add")]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == function.image and container["resources"]["limits"] == {"memory": "256Mi", "cpu": "500m"}
    assert ("POST", "/api/v1/namespaces/dispatch-default/services/fn-k-add:http/proxy/") in apiserver.requests


def test_a_redeploy_is_a_rolling_update_and_delete_removes_everything(client, apiserver):
    fn = client.deploy(add, name="k-roll", min_workers=1)
    assert fn(1, 1) == 2
    if apiserver is not None:
        before = apiserver.objects[("deployments", NAMESPACE, "fn-k-roll")]["metadata"]["generation"]
        old_pods = [pod.container.id for pod in apiserver.pods[(NAMESPACE, "fn-k-roll")]]
    fn = client.deploy(add_more, name="k-roll", min_workers=1)
    assert fn(1, 1) == 102
    if apiserver is not None:
        deployment = apiserver.objects[("deployments", NAMESPACE, "fn-k-roll")]
        assert deployment["metadata"]["generation"] == before + 1
        assert ("PUT", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/fn-k-roll") in apiserver.requests
        assert not set(old_pods) & {pod.container.id for pod in apiserver.pods[(NAMESPACE, "fn-k-roll")]}
    fn.delete()
    if apiserver is not None:
        assert not [key for key in apiserver.objects if key[2] == "fn-k-roll"]
        assert apiserver.pods[(NAMESPACE, "fn-k-roll")] == []
        assert apiserver.refused == []


def test_min_workers_zero_scales_to_zero_when_idle_and_back_on_a_run(client, apiserver, monkeypatch):
    monkeypatch.setattr(kubernetes_driver, "IDLE_CHECK", 0.2)
    fn = client.deploy(add, name="k-idle", min_workers=0, idle_timeout="1s")
    assert fn(2, 2) == 4
    deadline = time.monotonic() + 30
    if apiserver is not None:
        while time.monotonic() < deadline and (apiserver.objects[("deployments", NAMESPACE, "fn-k-idle")]["spec"]["replicas"]
                                               or apiserver.pods[(NAMESPACE, "fn-k-idle")]):
            time.sleep(0.1)
        assert apiserver.objects[("deployments", NAMESPACE, "fn-k-idle")]["spec"]["replicas"] == 0
        assert apiserver.pods[(NAMESPACE, "fn-k-idle")] == []
    else:
        time.sleep(3)
    assert fn(3, 3) == 6  # scaled back to one
    if apiserver is not None:
        assert len(apiserver.pods[(NAMESPACE, "fn-k-idle")]) == 1
        assert apiserver.refused == []


def test_a_pod_killed_over_its_memory_limit_is_reported_as_oomkilled(client, apiserver):
    if apiserver is None:
        pytest.skip("needs the fake's pods without the runtime's own memory cap")
    apiserver.pod_environment = {"DISPATCH_MEMORY": ""}  # only the cgroup's limit stands
    try:
        fn = client.deploy(allocate, name="k-oom", memory="96M", timeout=60, min_workers=1)
        run = fn.spawn(400).wait(120)
        assert run.status == "FAILED" and run.error.type == "SystemError"
        assert "OOMKilled" in run.error.message and "96 MiB" in run.error.message
        assert fn(8) == 8  # the restarted pod serves again
    finally:
        apiserver.pod_environment = {}


def test_without_a_cluster_the_deploy_fails_and_a_failover_list_serves_locally(home):
    options = {"kubernetes": {"kubeconfig": str(home / "no-such-kubeconfig")}}
    with dk.connect(settings=Settings(home=home, plugin_options=options)) as client:
        with pytest.raises(dk.DeployError, match="no Kubernetes cluster is configured"):
            client.deploy(add, name="k-none", driver="kubernetes")
        fn = client.deploy(add, name="k-failover", drivers=["kubernetes", "local"])
        status = fn.refresh().driver_status
        assert status["kubernetes"]["status"] == "ERROR" and "no Kubernetes cluster" in status["kubernetes"]["reason"]
        run = fn.spawn(1, 2).wait(30)
        assert run.output == 3 and run.driver == "local"
        fn.delete()  # a driver that never deployed has nothing to remove


def test_a_wrong_token_is_refused_with_the_reason(home, registry, python_base, apiserver, tmp_path):
    if apiserver is None:
        pytest.skip("the fake's token")
    config = apiserver.kubeconfig()
    config["users"][0]["user"]["token"] = "wrong"
    path = tmp_path / "bad-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    with dk.connect(settings=_settings(home, registry, python_base, str(path))) as client:
        with pytest.raises(dk.DeployError, match="Unauthorized"):
            client.deploy(add, name="k-denied")
        assert client.get_function("k-denied").status == "ERROR"


def test_an_image_pull_secret_reaches_the_pods(home, registry, python_base, kubeconfig, apiserver):
    if apiserver is None:
        pytest.skip("reads the fake's objects")
    settings = _settings(home, registry, python_base, kubeconfig, image_pull_secret="registry-login",
                         namespace="team-{org}")
    with dk.connect(settings=settings) as client:
        fn = client.deploy(add, name="k-private")
        assert fn(4, 4) == 8
        pod = apiserver.objects[("deployments", "team-default", "fn-k-private")]["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "registry-login"}]
        fn.delete()


def test_the_fake_refuses_what_the_schema_refuses(apiserver):
    if apiserver is None:
        pytest.skip("the fake's own validation")
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "default"},
           "spec": {"replica": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}}}
    apiserver.namespaces.setdefault("default", {"metadata": {"name": "default"}})
    request = urllib.request.Request(apiserver.url + "/apis/apps/v1/namespaces/default/deployments",
                                     data=json.dumps(bad).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {apiserver.token}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 422 and "replica" in json.loads(caught.value.read())["message"]
    apiserver.refused.clear()


def slow(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_timeouts_and_crashes_are_reported_in_the_run(client, apiserver):
    from .support import crash

    fn = client.deploy(slow, name="k-slow", timeout="1s", min_workers=1)
    run = fn.spawn(3).wait(120)
    assert run.status == "FAILED" and run.error.type == "SystemError" and "timed out after 1s" in run.error.message
    fn = client.deploy(crash, name="k-crash", min_workers=1)
    run = fn.spawn("exit").wait(120)
    assert run.status == "FAILED" and run.error.type == "SystemError"
    assert "ended with exit code 3" in run.error.message
    assert fn("none") == "survived"  # the restarted pod serves again


def _held_by_a_pod(apiserver, name, run_id):
    """Wait (bounded) until a pod of the fake holds the run; on a real cluster, a moment."""
    if apiserver is None:
        time.sleep(2)
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pod in apiserver.pods.get((NAMESPACE, name), []):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{pod.port}/_/runs", timeout=5) as reply:
                    if run_id in json.loads(reply.read())["running"]:
                        return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no pod of {name} took run {run_id}")


def test_a_timed_out_run_has_its_pod_deleted_and_the_next_run_is_served(client, apiserver):
    fn = client.deploy(slow, name="k-stuck", timeout="2s", min_workers=1, max_workers=1)
    if apiserver is not None:
        deleted_before = len(apiserver.deleted_pods)
        pod = apiserver.pods[(NAMESPACE, "fn-k-stuck")][0].name
    run = fn.spawn(600).wait(120)
    assert run.status == "FAILED" and run.error.type == "SystemError"
    assert "timed out after 2s" in run.error.message and "was deleted (the Deployment replaces it)" in run.error.message
    # The one pod would still be running slow(600) for ten minutes: only its replacement can answer.
    assert fn(0) == 0
    if apiserver is not None:
        assert apiserver.deleted_pods[deleted_before:] == [pod] and pod in run.error.message
        assert ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}") in apiserver.requests
        assert [p.name for p in apiserver.pods[(NAMESPACE, "fn-k-stuck")]] != [pod]
        assert apiserver.refused == []


def test_a_cancelled_run_has_its_pod_deleted_and_the_next_run_is_served(client, apiserver):
    fn = client.deploy(slow, name="k-cancel", min_workers=1, max_workers=1)
    assert fn(0) == 0
    run = fn.spawn(600)
    _held_by_a_pod(apiserver, "fn-k-cancel", run.id)
    stopped = client.cancel_run(run.id)
    assert stopped.status == dk.RunStatus.CANCELLED
    assert fn(0) == 0  # a fresh pod: the cancelled one would still be busy
    if apiserver is not None:
        assert apiserver.deleted_pods and apiserver.refused == []


def test_a_run_that_is_not_running_is_not_cancelled_and_no_pod_is_deleted(client, apiserver):
    fn = client.deploy(add, name="k-done", min_workers=1)
    run = fn.spawn(1, 2).wait(120)
    before = list(apiserver.deleted_pods) if apiserver is not None else []
    with pytest.raises(dk.ConflictError, match="already finished"):
        client.cancel_run(run.id)
    if apiserver is not None:
        assert apiserver.deleted_pods == before


def test_the_fake_deletes_pods_and_refuses_bad_delete_options_as_the_schema_does(client, apiserver):
    if apiserver is None:
        pytest.skip("the fake's own validation")
    fn = client.deploy(add, name="k-podapi", min_workers=1)
    assert fn(1, 1) == 2
    pod = apiserver.pods[(NAMESPACE, "fn-k-podapi")][0].name
    headers = {"Authorization": f"Bearer {apiserver.token}", "Content-Type": "application/json"}
    base = f"{apiserver.url}/api/v1/namespaces/{NAMESPACE}/pods/"

    def call(method, path, body=None):
        request = urllib.request.Request(base + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert call("GET", f"{pod}:8080/proxy/_/runs") == (200, {"running": []})
    status, body = call("DELETE", pod, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriod": 3})
    assert status == 422 and "gracePeriod" in body["message"]
    apiserver.refused.clear()
    assert call("DELETE", "no-such-pod")[0] == 404
    status, body = call("DELETE", pod, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 3})
    assert status == 200 and body["kind"] == "Pod" and body["metadata"]["name"] == pod
    assert call("GET", f"{pod}:8080/proxy/_/runs")[0] == 404
    assert fn(2, 2) == 4  # the ReplicaSet's replacement
    fn.delete()
