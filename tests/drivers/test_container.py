"""The container driver end to end: images built and pushed, containers run by podman."""

from __future__ import annotations

import time

import pytest

import dispatch_kernel as dk

from .support import crash, driver_pool
from dispatch_kernel.settings import Settings
from tests.containers_support import ENGINE_OPTIONS, container_options

# The first test of a session may debootstrap the Python base image (minutes, once per cache).
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def client(home, registry, podman_service, python_base):
    settings = Settings(home=home, driver="container",
                        plugin_options=container_options(registry.address, python_base, podman_service.url))
    with dk.connect(settings=settings) as the_client:
        yield the_client


def add(x, y):
    print("adding", x, y)
    return x + y


def handle(ctx, payload):
    ctx.logger.info("hi from %s", ctx.function)
    return {"hello": payload["name"], "secret": ctx.secrets["creds"]["key"]}


def whoami():
    import builtins
    import os
    import uuid

    # One server process per container: a token made once per process names the container.
    if not hasattr(builtins, "_dispatch_test_token"):
        builtins._dispatch_test_token = uuid.uuid4().hex
    return builtins._dispatch_test_token, os.getpid()


def test_a_function_runs_in_a_container_with_its_logs(client):
    fn = client.deploy(add, max_workers=2)
    assert fn.refresh().image.startswith(client.dispatch.images.oci().address + "/dispatch/functions/")
    run = fn.spawn(2, 3).wait(60)
    assert run.status == "SUCCEEDED" and run.output == 5
    assert run.logs["stdout"] == "adding 2 3\n"
    assert run.cold_start
    warm = fn.spawn(1, 1).wait(60)
    assert warm.output == 2 and not warm.cold_start
    with pytest.raises(dk.RunFunctionError, match="TypeError"):
        fn("a", 1)


def test_the_same_dispatch_handler_deploys_to_local_or_container(client):
    client.create_secret("creds", {"key": "s3cr3t"})
    for driver in ("local", "container"):
        fn = client.deploy(handle, name=f"greet-{driver}", secrets=["creds"], driver=driver)
        run = client.invoke(fn.name, {"name": "ada"})
        assert run.status == "SUCCEEDED", run.error
        assert run.output == {"hello": "ada", "secret": "s3cr3t"}
        assert "hi from" in run.logs["stderr"] and "s3cr3t" not in run.logs["stderr"]


def test_map_runs_across_containers(client):
    fn = client.deploy(add, max_workers=2)
    assert list(fn.map([(i, i) for i in range(200)])) == [2 * i for i in range(200)]
    assert driver_pool(client, "add").size <= 2


def test_a_timeout_kills_the_container_and_fails_only_that_run(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    fn = client.deploy(nap, timeout="1s")
    assert fn(0) == 0
    started = time.monotonic()
    with pytest.raises(dk.RunSystemError, match="timed out after 1s"):
        fn(30)
    assert time.monotonic() - started < 15
    assert fn(0.01) == 0.01


def test_a_running_run_is_cancelled_by_killing_its_container(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    fn = client.deploy(nap)
    assert fn(0) == 0
    run = fn.spawn(60)
    deadline = time.monotonic() + 30
    while client.get_run(run.id).status != dk.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # in the container now, not only marked RUNNING
    started = time.monotonic()
    stopped = client.cancel_run(run.id)
    assert stopped.status == dk.RunStatus.CANCELLED and time.monotonic() - started < 10
    assert fn(0.01) == 0.01  # a new container


def test_the_engine_enforces_the_memory_limit_and_only_that_run_fails(client, podman_service):
    def allocate(mib):
        block = bytearray(mib * 1024 * 1024)
        return len(block)

    fn = client.deploy(allocate, memory="128M", cpu=0.5)
    assert fn(16) == 16 * 1024 * 1024
    worker = driver_pool(client, "allocate")._idle[0]
    host_config = worker.container.attrs["HostConfig"]
    assert host_config["Memory"] == 128 * 1024 * 1024
    assert host_config["NanoCpus"] == 500_000_000
    with pytest.raises(dk.RunSystemError, match="memory limit"):
        fn(4096)
    assert fn(16) == 16 * 1024 * 1024


def test_the_engine_kills_a_container_over_its_memory_limit(home, registry, podman_service, python_base):
    # Without the runtime's own address-space cap, only the engine's cgroup limit stands.
    options = {**ENGINE_OPTIONS, "environment": {"DISPATCH_MEMORY": ""}}
    settings = Settings(home=home, driver="container",
                        plugin_options=container_options(registry.address, python_base, podman_service.url, options))

    def leak():
        hoard = []
        while True:
            hoard.append(bytearray(8 * 1024 * 1024))
            hoard[-1][::4096] = b"x" * len(hoard[-1][::4096])  # touch every page

    with dk.connect(settings=settings) as client:
        fn = client.deploy(leak, memory="96M", timeout=60)
        with pytest.raises(dk.RunSystemError, match="memory limit of 96 MiB"):
            fn()


@pytest.mark.parametrize(("kind", "cause"), [("exit", "exited with code 3"), ("segv", "SIGSEGV"),
                                             ("kill", "SIGKILL")])
def test_a_crashing_container_fails_only_its_run(client, kind, cause):
    fn = client.deploy(crash)
    with pytest.raises(dk.RunSystemError, match=cause):
        fn(kind)
    assert fn("no") == "survived"
    assert [run.status for run in client.list_runs(function="crash")] == ["SUCCEEDED", "FAILED"]


def test_idle_containers_scale_to_zero_and_come_back(client, podman_service):
    fn = client.deploy(whoami, idle_timeout="1s")
    first_host, _ = fn()
    pool = driver_pool(client, "whoami")
    assert pool.size == 1
    deadline = time.monotonic() + 20
    while pool.size and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool.size == 0
    while time.monotonic() < deadline and _containers(podman_service, "dispatch-whoami-"):
        time.sleep(0.1)
    assert not _containers(podman_service, "dispatch-whoami-")
    run = client.invoke("whoami")
    assert run.status == "SUCCEEDED" and run.cold_start and run.output[0] != first_host


def test_min_workers_start_at_deploy(client):
    client.deploy(whoami, min_workers=1)
    pool = driver_pool(client, "whoami")
    assert pool.size == 1 and pool.idle == 1
    assert not client.invoke("whoami").cold_start


def test_a_redeploy_replaces_the_containers(client):
    def version():
        return 1

    fn = client.deploy(version, name="version")
    assert fn() == 1
    registry = client.dispatch.images.oci().registry
    mark = len(registry.pushed)

    def version():  # noqa: F811
        return 2

    fn = client.deploy(version, name="version")
    assert fn() == 2
    # a code-only redeploy pushes the one small code layer (plus the config and the manifest)
    assert sorted(what for what, _, _ in registry.pushed[mark:]) == ["config", "layer", "manifest"]
    assert [size for what, _, size in registry.pushed[mark:] if what == "layer"][0] < 64 * 1024


def test_closing_the_client_removes_every_container(home, registry, podman_service, python_base):
    settings = Settings(home=home, driver="container",
                        plugin_options=container_options(registry.address, python_base, podman_service.url))
    client = dk.connect(settings=settings)
    client.deploy(whoami, name="closing", min_workers=2, max_workers=2)
    names = podman_service.podman("ps", "--format", "{{.Names}}").stdout.split()
    assert len([n for n in names if n.startswith("dispatch-closing-")]) == 2
    client.close()
    names = podman_service.podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
    assert not [n for n in names if n.startswith("dispatch-closing-")]


def _containers(podman, prefix: str) -> list[str]:
    names = podman.podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
    return [name for name in names if name.startswith(prefix)]


def uses_the_image():
    import ctypes

    import markupsafe

    ctypes.CDLL("libgomp.so.1")  # from the image's system packages layer
    return str(markupsafe.escape("<i>")), markupsafe.__version__


def markupsafe_version():
    import markupsafe

    return markupsafe.__version__


def test_base_image_then_image_then_a_function_built_on_it(client, python_base):
    base = client.create_base_image("python311", python_base, language="python3")
    assert base.status == "READY" and base.python == "3.11" and base.digest.startswith("sha256:")
    lines = []
    image = client.create_image("ds", base="python311", requirements=["markupsafe==2.1.5"],
                                system_packages=["libgomp1"], progress=lines.append)
    assert image.status == "READY" and "/dispatch/images/default/ds@sha256:" in image.image_url
    assert any("apt-get install libgomp1" in line for line in lines)
    assert [i.name for i in client.list_images()] == ["ds"]
    fn = client.deploy(uses_the_image, image="ds", driver="container")
    assert fn() == ("&lt;i&gt;", "2.1.5")
    function = fn.refresh()
    assert function.image_name == "ds" and function.image.startswith(client.dispatch.images.oci().address)
    # the function's image is the image's layers plus the runtime and the code, nothing else
    from dispatch_kernel.images.registry import Reference, RegistryClient

    registry = RegistryClient(client.dispatch.images.oci().address)
    image_ref, function_ref = Reference.parse(image.image_url), Reference.parse(function.image)
    image_layers = registry.get_manifest(image_ref.repository, image_ref.ref)[0]["layers"]
    function_layers = registry.get_manifest(function_ref.repository, function_ref.ref)[0]["layers"]
    registry.close()
    assert function_layers[:len(image_layers)] == image_layers
    assert len(function_layers) == len(image_layers) + 2
    # the same image serves the local driver: its requirements (its pins first) in a venv
    local = client.deploy(markupsafe_version, image="ds", driver="local")
    assert local() == "2.1.5"


def test_images_are_checked(client):
    with pytest.raises(dk.NotFoundError):
        client.create_image("x", base="nope")
    with pytest.raises(dk.NotFoundError):
        client.deploy(add, image="nope", driver="container")
    broken = client.create_base_image("gone", f"{client.dispatch.images.oci().address}/dispatch/none:1")
    assert broken.status == "ERROR" and broken.reason
    with pytest.raises(dk.ConflictError):
        client.create_image("x", base="gone")
    with pytest.raises(dk.InvalidRequestError):
        client.create_base_image("bad", "python:3.11")


def test_a_failed_image_build_is_an_error_that_can_be_retried(client, python_base):
    client.create_base_image("python311", python_base)
    with pytest.raises(dk.InvalidRequestError, match="not a valid requirement"):
        client.create_image("x", base="python311", requirements=["=="])
    with pytest.raises(dk.DeployError, match="apt-get install no-such-package-dk failed"):
        client.create_image("x", base="python311", system_packages=["no-such-package-dk"])
    failed = client.get_image("x")
    assert failed.status == "ERROR" and "Unable to locate package" in failed.reason
    image = client.create_image("x", base="python311")
    assert image.status == "READY" and image.reason == "" and image.system_packages == []
    with pytest.raises(dk.ConflictError):
        client.create_image("x", base="python311")


def test_a_bridge_network_publishes_the_port_on_127_0_0_1(home, registry, podman_service, python_base):
    options = {**ENGINE_OPTIONS, "network_mode": "bridge"}
    settings = Settings(home=home, driver="container",
                        plugin_options=container_options(registry.address, python_base, podman_service.url, options))
    with dk.connect(settings=settings) as client:
        fn = client.deploy(add, name="bridged")
        assert fn(20, 22) == 42
        worker = driver_pool(client, "bridged")._idle[0]
        worker.container.reload()
        assert worker.container.attrs["HostConfig"]["NetworkMode"] == "bridge"
        assert worker.container.ports["8080/tcp"][0]["HostIp"] == "127.0.0.1"
