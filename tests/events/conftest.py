"""Components the event tests drive: VMware's vCenter simulator and the NATS server.

A missing component skips its tests on a developer's machine and fails them under CI=true.
"""

from __future__ import annotations

import os
import socket

import pytest

from tests.vcsim import Unavailable, Vcsim, build

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NATS_URL = os.environ.get("DISPATCH_TEST_NATS_URL", "nats://127.0.0.1:4222")


def missing(reason: str):
    if CI:
        pytest.fail(f"{reason} (CI=true: a missing component fails the test)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def vcsim_binary():
    try:
        return build()
    except Unavailable as exc:
        missing(str(exc))


@pytest.fixture
def vcsim(vcsim_binary):
    simulator = Vcsim(vcsim_binary)
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture(scope="session")
def nats_url():
    host, port = NATS_URL.rsplit("/", 1)[-1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            banner = sock.recv(4096).decode(errors="replace")
    except OSError as exc:
        missing(f"no NATS server at {NATS_URL}: {exc}")
    if '"jetstream":true' not in banner:
        missing(f"the NATS server at {NATS_URL} has no JetStream")
    return NATS_URL
