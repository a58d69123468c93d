"""The registry, podman service and Python base image fixtures (tests/containers_support.py)."""

from tests.containers_support import podman_service, python_base, registry  # noqa: F401
