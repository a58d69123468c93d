"""The openfaas driver against a gateway that checks every request against OpenFaaS's OpenAPI
document and runs the function's real image with podman (tests/drivers/openfaas_gateway.py).

With DISPATCH_TEST_OPENFAAS_URL set (and OPENFAAS_USERNAME / OPENFAAS_PASSWORD,
DISPATCH_TEST_REGISTRY and DISPATCH_TEST_BASE_IMAGE as for a real cluster), the tests that need
no view of the gateway's insides run against that gateway instead; see the README.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import dispatch_kernel as dk
from dispatch_kernel.drivers.openfaas import memory_text, service_name
from dispatch_kernel.model import Function
from dispatch_kernel.runtime.protocol import Job, load_answer
from dispatch_kernel.settings import Settings
from tests.containers_support import ENGINE_OPTIONS, image_options

from .openfaas_gateway import FakeGateway

pytestmark = pytest.mark.timeout(600)
REAL = os.environ.get("DISPATCH_TEST_OPENFAAS_URL")


@pytest.fixture(scope="module")
def gateway(podman_service, registry):
    if REAL:
        yield None
        return
    fake = FakeGateway(podman_service.url, ENGINE_OPTIONS).start()
    yield fake
    fake.stop()


def _settings(home, registry, python_base, gateway, **extra):
    url = REAL or gateway.url
    if REAL:
        registry_address, python_base = os.environ["DISPATCH_TEST_REGISTRY"], os.environ["DISPATCH_TEST_BASE_IMAGE"]
    else:
        registry_address = registry.address
    options = {**image_options(registry_address, python_base),
               "openfaas": {"gateway": url, "credentials": "openfaas-auth", "ready_timeout": 90, **extra}}
    return Settings(home=home, driver="openfaas", plugin_options=options)


@pytest.fixture
def client(home, registry, python_base, gateway):
    with dk.connect(settings=_settings(home, registry, python_base, gateway)) as the_client:
        the_client.create_secret("openfaas-auth", {"username": os.environ.get("OPENFAAS_USERNAME", "admin"),
                                                   "password": os.environ.get("OPENFAAS_PASSWORD", "s3cret")})
        yield the_client


def add(x, y):
    print("adding", x, y)
    return x + y


def add_more(x, y):
    return x + y + 100


def slow(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_deploy_run_update_and_delete_through_the_gateway(client, gateway):
    fn = client.deploy(add, name="of-add", memory="256M", max_workers=3)
    function = fn.refresh()
    assert function.status == "READY" and function.driver_status == {"openfaas": {"status": "READY", "reason": ""}}
    run = fn.spawn(2, 3).wait(120)
    assert run.status == "SUCCEEDED" and run.output == 5 and run.driver == "openfaas"
    assert run.logs["stdout"] == "adding 2 3\n"
    with pytest.raises(dk.RunFunctionError, match="TypeError"):
        fn("a", 1)
    if gateway is None:
        return
    assert gateway.refused == []
    method, path, body = next(r for r in gateway.requests if r[1] == "/system/functions")
    assert method == "POST" and body["service"] == "default-of-add"
    assert body["labels"]["com.openfaas.scale.max"] == "3" and body["labels"]["com.openfaas.scale.zero"] == "true"
    assert body["limits"] == {"memory": "256Mi"} and body["image"] == function.image

    fn = client.deploy(add_more, name="of-add", memory="256M", max_workers=3)
    assert fn(1, 1) == 102
    assert [r[0] for r in gateway.requests if r[1] == "/system/functions"] == ["POST", "PUT"]
    fn.delete()
    assert "default-of-add" not in gateway.functions and not gateway.containers.get("default-of-add")
    assert gateway.refused == []


def test_min_workers_scale_the_function(client, gateway):
    if gateway is None:
        pytest.skip("counts the fake gateway's containers")
    fn = client.deploy(add, name="of-scaled", min_workers=2, max_workers=2)
    scale = [body for method, path, body in gateway.requests if path.startswith("/system/scale-function/")]
    assert scale == [{"serviceName": "default-of-scaled", "namespace": "openfaas-fn", "replicas": 2}]
    assert len(gateway.containers["default-of-scaled"]) == 2
    assert sorted(fn.map([(1, 1), (2, 2), (3, 3)])) == [2, 4, 6]
    # Scaled to zero (as the provider does when idle), the next run brings a replica back.
    client.dispatch.drivers.get("openfaas").scale(fn.refresh(), 0)
    assert not gateway.containers["default-of-scaled"]
    assert fn(5, 5) == 10
    assert gateway.refused == []


def test_a_run_past_its_timeout_is_a_system_error_and_its_replica_is_replaced(client, gateway):
    import time

    fn = client.deploy(slow, name="of-slow", timeout="1s")
    run = fn.spawn(600).wait(120)
    assert run.status == "FAILED" and run.error.type == "SystemError"
    assert "timed out after 1s" in run.error.message
    # The replica would be busy with slow(600) for ten minutes: its runtime server ends itself
    # past exec_timeout, and the provider restarts its container.
    if gateway is None:
        time.sleep(5)
    else:
        container = gateway.containers["default-of-slow"][0][0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and container.status == "running":
            time.sleep(0.1)
            container.reload()
        assert container.attrs["State"]["ExitCode"] == 124
    assert fn(0) == 0
    if gateway is not None:
        assert gateway.restarts["default-of-slow"] == 1


def test_wrong_or_missing_credentials_fail_the_deploy_with_the_reason(home, registry, python_base, gateway):
    if gateway is None:
        pytest.skip("the fake gateway's credentials")
    with dk.connect(settings=_settings(home, registry, python_base, gateway)) as client:
        with pytest.raises(dk.DeployError, match="secret 'openfaas-auth'|no secret named"):
            client.deploy(add, name="of-nokey")
        client.create_secret("openfaas-auth", {"username": "admin", "password": "wrong"})
        with pytest.raises(dk.DeployError, match="refused the credentials"):
            client.deploy(add, name="of-denied")
        function = client.get_function("of-denied")
        assert function.status == "ERROR" and "401" in function.reason
        assert "wrong" not in function.reason


def test_the_fake_gateway_refuses_bodies_its_spec_refuses(gateway):
    if gateway is None:
        pytest.skip("the fake gateway's own validation")
    for body, words in [({"image": "x"}, "'service' is a required property"),
                        ({"service": "a", "image": "x", "replica": 2}, "Additional properties"),
                        ({"service": "a", "image": "x", "limits": {"memory": 512}}, "is not of type 'string'")]:
        request = urllib.request.Request(gateway.url + "/system/functions", data=json.dumps(body).encode(),
                                         method="POST", headers={"Authorization": gateway.auth})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 400 and words in caught.value.read().decode()
    gateway.refused.clear()
    gateway.requests.clear()


def test_an_async_run_answers_on_its_callback(client, gateway):
    if gateway is None:
        pytest.skip("a callback reachable from the gateway")
    fn = client.deploy(add, name="of-async")
    answers: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def do_POST(self):
            answers.append((self.headers.get("X-Function-Status"), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            arrived.set()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver = client.dispatch.drivers.get("openfaas")
        status = driver.invoke_async(fn.refresh(), [Job("r1", (20, 22), {}, None, False)],
                                     f"http://127.0.0.1:{server.server_address[1]}/done")
        assert status == 202
        assert arrived.wait(60)
    finally:
        server.shutdown()
        server.server_close()
    code, body = answers[0]
    outcome = load_answer(body)[0]
    assert code == "200" and outcome.error is None and pickle.loads(outcome.output) == 42


def test_a_split_between_local_and_openfaas(home, registry, python_base, gateway):
    with dk.connect(settings=_settings(home, registry, python_base, gateway)) as client:
        client.create_secret("openfaas-auth", {"username": os.environ.get("OPENFAAS_USERNAME", "admin"),
                                               "password": os.environ.get("OPENFAAS_PASSWORD", "s3cret")})
        fn = client.deploy(add, name="of-split", drivers={"local": 0.5, "openfaas": 0.5})
        assert fn.refresh().driver_status == {"local": {"status": "READY", "reason": ""},
                                              "openfaas": {"status": "READY", "reason": ""}}
        runs = [fn.spawn(i, 1) for i in range(24)]
        done = [run.wait(120) for run in runs]
        assert [run.output for run in done] == [i + 1 for i in range(24)]
        assert {run.driver for run in done} == {"local", "openfaas"}
        assert fn.spawn(1, 1, driver="openfaas").wait(120).driver == "openfaas"
        # Back to local alone: the openfaas function is removed from the gateway.
        fn = client.deploy(add, name="of-split", driver="local")
        assert fn(2, 2) == 4 and fn.refresh().drivers == {}
        if gateway is not None:
            assert "default-of-split" not in gateway.functions and not gateway.containers.get("default-of-split")


def test_names_and_quantities():
    assert service_name(Function(name="score", org="default")) == "default-score"
    long = service_name(Function(name="My_Function.v2" + "x" * 50, org="Team"))
    assert len(long) <= 63 and long == long.lower() and "_" not in long and "." not in long
    assert memory_text(512 << 20) == "512Mi" and memory_text(1 << 30) == "1Gi" and memory_text(1000) == "1000"


def test_spawned_runs_are_queued_on_async_function_and_answered_on_the_callback(home, registry, python_base,
                                                                                 gateway):
    if gateway is None:
        pytest.skip("a callback reachable from the gateway")
    settings = _settings(home, registry, python_base, gateway, callback="127.0.0.1:0")
    with dk.connect(settings=settings) as client:
        client.create_secret("openfaas-auth", {"username": "admin", "password": "s3cret"})
        fn = client.deploy(add, name="of-queued")
        queued_before = len(gateway.queued)
        run = fn.spawn(2, 3).wait(120)
        assert run.status == "SUCCEEDED" and run.output == 5 and run.logs["stdout"] == "adding 2 3\n"
        assert fn(4, 4) == 8  # a waited call goes through /function/{name}
        assert gateway.queued[queued_before:] == ["default-of-queued"]
        failed = fn.spawn("a", 1).wait(120)
        assert failed.status == "FAILED" and failed.error.type == "FunctionError" and "TypeError" in failed.error.message

        slow_fn = client.deploy(slow, name="of-queued-slow", timeout="1s")
        stuck = slow_fn.spawn(600).wait(120)
        assert stuck.status == "FAILED" and stuck.error.type == "SystemError"
        assert "timed out after 1s" in stuck.error.message
        assert gateway.queued[-1] == "default-of-queued-slow"
        assert slow_fn.spawn(0).wait(120).output == 0  # the replica was replaced
        assert gateway.refused == []


def test_a_callback_for_no_run_or_from_a_stranger_is_refused():
    from dispatch_kernel.drivers.callbacks import Answer, CallbackReceiver

    receiver = CallbackReceiver("127.0.0.1:0")
    try:
        token, url = receiver.expect()

        def post(target, body=b"x", status="200"):
            request = urllib.request.Request(target, data=body, method="POST", headers={"X-Function-Status": status})
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    return reply.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(receiver.url + "/not-a-token") == 404
        assert post(url, status="abc") == 400
        assert post(url, b"answer", "502") == 200
        assert receiver.wait(token, 10) == Answer(502, b"answer")
        assert post(url) == 404  # answered once; the token is forgotten
        token, url = receiver.expect()
        assert receiver.wait(token, 0.05) is None
        with pytest.raises(ValueError):
            CallbackReceiver("no-port")
    finally:
        receiver.close()


def test_a_running_run_on_openfaas_cannot_be_cancelled_and_says_why(client):
    import time

    fn = client.deploy(slow, name="of-nocancel")
    run = fn.spawn(3)
    deadline = time.monotonic() + 60
    while client.get_run(run.id).status != dk.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(dk.ConflictError, match="runs on OpenFaaS, which cannot stop a running run"):
        client.cancel_run(run.id)
    assert run.wait(120).output == 3  # left to finish
