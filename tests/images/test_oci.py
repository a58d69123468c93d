"""OCI images built in Python, pushed to a real registry and run by real podman."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from dispatch_kernel.images.oci import PYTHON_LABEL, OciBuilder, repository_name
from dispatch_kernel.model import DeployError
from dispatch_kernel.images.registry import Reference, RegistryClient
from dispatch_kernel.packaging import package
from dispatch_kernel.runtime.server import function_file
from dispatch_kernel.settings import Settings
from tests.containers_support import free_port, image_options

# The first test of a session may debootstrap the Python base image (minutes, once per cache).
pytestmark = pytest.mark.timeout(600)


def greet(name):
    import markupsafe

    print("greeting", name)
    return {"html": str(markupsafe.escape(f"<b>{name}</b>")),
            "speedups": markupsafe.escape.__module__}


def one():
    return 1


def two():
    return 2


def code_of(fn, memory=None) -> bytes:
    source = package(fn)
    return function_file(source.payload, name=source.handler, convention=source.convention,
                         memory=memory, origins=source.origins, sources=source.sources)


@pytest.fixture
def builder(tmp_path, registry, python_base):
    the_builder = OciBuilder(Settings(home=tmp_path / "home",
                                      plugin_options=image_options(registry.address, python_base)))
    yield the_builder
    the_builder.registry.close()


def test_the_image_is_pulled_and_run_by_podman_and_answers_a_run(builder, podman_service):
    built = builder.build("dispatch/tests/greet", code_of(greet), ["markupsafe==2.1.5"])
    assert built.reference.startswith(f"{builder.registry.address}/dispatch/tests/greet@sha256:")
    manifest, _ = builder.registry.get_manifest("dispatch/tests/greet", built.digest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert len(manifest["layers"]) == 4  # base, requirements, runtime, code
    podman_service.podman("pull", built.reference)
    port = free_port()
    name = f"dk-oci-{port}"
    podman_service.podman("run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}",
                       "-e", "HOST=127.0.0.1", built.reference)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                    assert response.read() == b"OK"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    logs = podman_service.podman("logs", name, check=False)
                    pytest.fail(f"the container did not answer: {logs.stdout}{logs.stderr}")
                time.sleep(0.1)
        request = urllib.request.Request(url + "/", data=json.dumps({"context": {}, "payload": ["ada"]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["context"]["error"] is None
        assert answer["payload"] == {"html": "&lt;b&gt;ada&lt;/b&gt;", "speedups": "markupsafe._speedups"}
        assert answer["context"]["logs"]["stdout"] == "greeting ada\n"
    finally:
        podman_service.podman("rm", "--force", "--time", "0", name, check=False)


def test_a_code_only_rebuild_pushes_one_small_layer_and_an_unchanged_one_nothing(builder):
    repository = "dispatch/tests/rebuild"
    first = builder.build(repository, code_of(one), [])
    assert len(first.pushed_layers) == 3  # requirements, runtime, code (the base is mounted)
    again = builder.build(repository, code_of(one), [])
    assert again.digest == first.digest and again.pushed == []
    changed = builder.build(repository, code_of(two), [])
    assert changed.digest != first.digest
    assert changed.pushed_layers == [changed.layers[-1]]
    assert sorted(what for what, _, _ in changed.pushed) == ["config", "layer", "manifest"]
    assert changed.seconds < 2.0, f"a code-only rebuild took {changed.seconds:.3f}s"
    assert builder.registry.manifest_digest(repository, "latest") == changed.digest


def test_layers_are_content_addressed_and_shared_between_images(builder):
    a = builder.build("dispatch/tests/a", code_of(lambda: "a"), [])
    b = builder.build("dispatch/tests/b", code_of(lambda: "b"), [])
    assert a.layers[:2] == b.layers[:2]  # requirements and runtime: built once, cached
    assert a.layers[2] != b.layers[2]


def test_the_debian_base_carries_its_python_version(builder):
    assert builder.python_version() == "3.11"


def test_references_and_repository_names():
    ref = Reference.parse("127.0.0.1:5000/dispatch/python:3.11-bookworm")
    assert (ref.registry, ref.repository, ref.tag) == ("127.0.0.1:5000", "dispatch/python", "3.11-bookworm")
    pinned = Reference.parse("127.0.0.1:5000/a/b@sha256:abc")
    assert pinned.digest == "sha256:abc" and pinned.ref == "sha256:abc"
    assert repository_name("My Org", "Fn__Name!") == "my-org/fn-name"
    with pytest.raises(ValueError):
        Reference.parse("python:3.11")


def test_the_registry_client_reports_a_missing_manifest(registry):
    client = RegistryClient(registry.address)
    assert client.manifest_digest("dispatch/none", "latest") is None
    client.close()


def test_the_oci_plugin_prepares_environment_images(builder):
    from dispatch_kernel import plugins

    assert plugins.load("image builder", "oci") is OciBuilder
    environment = builder.prepare(["markupsafe==2.1.5"])
    assert environment.id.startswith(f"{builder.registry.address}/dispatch/environments@sha256:")
    assert environment.requirements == ("markupsafe==2.1.5",)
    assert builder.prepare(["markupsafe==2.1.5"]).id == environment.id  # cached, nothing pushed


def test_a_system_package_needs_the_debian_base(builder, registry):
    # an image not made from the Debian base here (a scratch image) cannot take system packages
    layer = builder.blobs.files_layer({"hello.txt": b"hi"})
    scratch = builder.assembler.push(Reference(registry.address, "dispatch/tests/scratch", "1"), [layer],
                                     labels={PYTHON_LABEL: "3.11"})
    with pytest.raises(DeployError, match="Debian bookworm base"):
        builder.build_environment("dispatch/tests/env", scratch.reference, [], ["libgomp1"])
