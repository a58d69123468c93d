"""System components for the image and container tests, started by the tests themselves.

- `registry`: Debian's docker-registry on 127.0.0.1 on a free port, with its own config file
  and storage directory, stopped at the end of the session;
- `podman_service`: `podman system service` on a private unix socket (the Docker-compatible
  API), with a containers.conf that selects runc and sets the nofile/nproc ulimits this sandbox
  needs, a registries.conf that trusts the test registry over plain HTTP, and private storage;
- `python_base`: the Debian bookworm Python base image (debootstrapped once, cached under
  ~/.cache/dispatch-kernel or $DISPATCH_CACHE) pushed to the test registry.

Both services are dispatch_kernel.images.services, bounded waits included. A missing component
skips the tests, except under CI=true, where it fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from dispatch_kernel.images.services import LocalRegistry, PodmanService, ServiceError, free_port

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Engine options this sandbox needs (runc; explicit ulimits), passed through the driver.
ENGINE_OPTIONS = {
    "runtime": "runc",
    "ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024},
                {"Name": "nproc", "Soft": 1024, "Hard": 1024}],
}


def image_options(registry_address: str, python_base: str) -> dict[str, dict]:
    """plugin_options for the OCI builder: push to the test registry, build on the test base."""
    return {"oci": {"registry": registry_address, "base_image": python_base}}


def container_options(registry_address: str, python_base: str, docker_host: str,
                      engine_options: dict | None = None) -> dict[str, dict]:
    """plugin_options for the container driver and the OCI builder of the test services."""
    return {**image_options(registry_address, python_base),
            "container": {"docker_host": docker_host, "engine_options": dict(engine_options or ENGINE_OPTIONS)}}


def missing(what: str) -> None:
    """Fail under CI, skip elsewhere."""
    if CI:
        pytest.fail(f"{what} (CI=true: a missing component fails the test)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    service = LocalRegistry(tmp_path_factory.mktemp("registry"))
    try:
        service.start()
    except ServiceError as exc:
        missing(str(exc))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def podman_service(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    service = PodmanService(tmp_path_factory.mktemp("podman"), insecure_registries=[registry.address])
    try:
        service.start()
    except ServiceError as exc:
        missing(str(exc))
    assert service.engine_options() == ENGINE_OPTIONS
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def python_base(registry: LocalRegistry) -> str:
    """The Debian Python base image in the test registry (debootstrap once, then cached)."""
    from dispatch_kernel.images.debian import debian_python_base
    from dispatch_kernel.images.layers import default_cache
    from dispatch_kernel.images.registry import RegistryClient

    if shutil.which("debootstrap") is None and not (default_cache() / "rootfs" / "bookworm-python3").exists():
        missing("debootstrap is not installed (make system-deps)")
    client = RegistryClient(registry.address)
    try:
        return str(debian_python_base(client))
    finally:
        client.close()


__all__ = ["CI", "ENGINE_OPTIONS", "free_port", "missing", "podman_service", "python_base", "registry"]
