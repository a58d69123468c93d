"""The image methods of the Client, the same over both clients: "local" (a core in this process)
and "rest" (dk.connect(url, token=...) to a real Jupyter server with the extension)."""

from __future__ import annotations

import pytest

import dispatch_kernel as dk
from dispatch_kernel import HttpClient
from tests.server.live import connected

# The first build of a session may debootstrap the Python base image (minutes, once per cache).
pytestmark = pytest.mark.timeout(600)


def shout(text):
    return text.upper() + "!"


@pytest.fixture(params=["local", "rest"])
def client(request, home, tmp_path, registry, monkeypatch):
    monkeypatch.setenv("DISPATCH_REGISTRY", registry.address)
    # Local workers inherit PYTHONPATH; keep the test process's own packages out of them.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with connected(request.param, home, tmp_path / "server") as the_client:
        assert isinstance(the_client, HttpClient) == (request.param == "rest")
        yield the_client


def test_base_image_image_and_a_function_on_it(client, python_base):
    assert isinstance(client, dk.Client)
    base = client.create_base_image("python311", python_base, language="python3", tags={"os": "bookworm"})
    assert isinstance(base, dk.BaseImage)
    assert base.status == "READY" and base.python == "3.11" and base.tags == {"os": "bookworm"}
    assert [b.name for b in client.list_base_images()] == ["python311"]
    assert client.get_base_image("python311").digest == base.digest

    lines: list[str] = []
    image = client.create_image("plain", "python311", progress=lines.append)
    assert isinstance(image, dk.Image)
    assert image.status == "READY" and "/dispatch/images/default/plain@sha256:" in image.image_url
    assert any("resolving wheels" in line or "pushed" in line or "layer" in line for line in lines), lines
    assert [i.name for i in client.list_images()] == ["plain"]
    assert client.get_image("plain").digest == image.digest
    with pytest.raises(dk.ConflictError):
        client.create_image("plain", "python311")

    fn = client.deploy(shout, image="plain")
    assert fn("hi") == "HI!"
    assert fn.refresh().image_name == "plain"

    client.delete_image("plain")
    with pytest.raises(dk.NotFoundError):
        client.get_image("plain")
    client.delete_base_image("python311")
    with pytest.raises(dk.NotFoundError):
        client.get_base_image("python311")
    assert client.list_base_images() == [] and client.list_images() == []


def test_image_errors_are_the_same_over_both_clients(client, python_base, registry):
    with pytest.raises(dk.NotFoundError):
        client.create_image("x", "nope")
    with pytest.raises(dk.NotFoundError):
        client.create_image("x", "nope", progress=print)  # refused before a build log starts
    with pytest.raises(dk.InvalidRequestError):
        client.create_base_image("bad", "python:3.11")
    gone = client.create_base_image("gone", f"{registry.address}/dispatch/none:1")
    assert gone.status == "ERROR" and gone.reason
    with pytest.raises(dk.ConflictError, match="not ready"):
        client.create_image("x", "gone")
    client.create_base_image("python311", python_base)
    with pytest.raises(dk.InvalidRequestError, match="not a valid requirement"):
        client.create_image("x", "python311", requirements=["=="])
    lines: list[str] = []
    with pytest.raises(dk.DeployError, match="resolving the requirements failed"):
        client.create_image("x", "python311", requirements=["no-such-distribution-dk==1.0"], progress=lines.append)
    assert any("no-such-distribution-dk" in line for line in lines)
    with pytest.raises(dk.DeployError, match="resolving the requirements failed"):
        client.create_image("x", "python311", requirements=["no-such-distribution-dk==1.0"])
    failed = client.get_image("x")
    assert failed.status == "ERROR" and "no-such-distribution-dk" in failed.reason
    with pytest.raises(dk.NotFoundError):
        client.deploy(shout, image="nope")
