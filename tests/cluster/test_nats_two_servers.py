"""Two servers on one PostgreSQL database and one NATS JetStream bus: every event is one run per
subscription across them, even when one server is killed mid-stream."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from cryptography.fernet import Fernet

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus
from tests.events.conftest import nats_url  # noqa: F401  (the fixture)
from tests.events.helpers import drop_stream
from tests.postgres_support import fresh_database
from tests.server.live import LiveServer

TOTAL = 1000


def order(ctx, payload):
    return payload


def _runs(client, function: str) -> list:
    return client.list_runs(function=function, limit=100_000)


@pytest.fixture
def stream(nats_url):  # noqa: F811
    name = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    yield name
    drop_stream(nats_url, name)


@pytest.mark.timeout(400)
def test_a_server_killed_mid_stream_loses_no_event_and_runs_none_twice(tmp_path, nats_url, stream):  # noqa: F811
    config = tmp_path / "dispatch_config.py"
    config.write_text(
        'c.DispatchApp.bus = "nats"\n'
        f'c.DispatchApp.plugin_options = {{"nats": {{"url": {nats_url!r}, "stream": {stream!r}, '
        '"ack_wait": 2.0, "retry_base": 0.05, "retry_max": 0.2}}\n')
    with fresh_database() as dsn:
        env = {"DISPATCH_SECRET_KEY": Fernet.generate_key().decode(), "DISPATCH_STORE_URL": dsn}
        a = LiveServer(tmp_path / "a-home", tmp_path / "a", env=env, extra=[f"--config={config}"])
        try:
            b = LiveServer(tmp_path / "b-home", tmp_path / "b", env=env, extra=[f"--config={config}"])
            try:
                with dk.connect(a.url, token=a.token) as client:
                    client.deploy(order, name="fa", max_workers=4)
                    client.deploy(order, name="fb", max_workers=4)
                    client.subscribe("fa", event_type="order.*")
                    client.subscribe("fb", event_type="order.created")
                    time.sleep(1.5)  # B's bus has made its consumers of the new subscriptions
                    ids = []
                    for n in range(TOTAL):
                        ids.append(client.emit("order.created", {"n": n})["id"])
                        if n == TOTAL // 2:
                            os.kill(b.process.pid, signal.SIGKILL)  # mid-stream, runs in flight
                    b.process.wait(10)
                    deadline = time.monotonic() + 120
                    while True:
                        runs = {name: _runs(client, name) for name in ("fa", "fb")}
                        done = all(len(r) >= TOTAL and all(RunStatus(x.status).finished for x in r)
                                   for r in runs.values())
                        if done:
                            break
                        assert time.monotonic() < deadline, {k: (len(v), sum(not RunStatus(x.status).finished for x in v)) for k, v in runs.items()}
                        time.sleep(0.5)
                    time.sleep(3)  # anything extra would have arrived by now
                    for name in ("fa", "fb"):
                        runs = _runs(client, name)
                        assert sorted(r.event["id"] for r in runs) == sorted(ids), name  # each once
                        statuses = {RunStatus(r.status) for r in runs}
                        assert statuses <= {RunStatus.SUCCEEDED, RunStatus.FAILED}, statuses
                        failed = [r for r in runs if r.status == RunStatus.FAILED]
                        assert all("interrupted" in r.error.message for r in failed), failed[:1]
            finally:
                b.stop()
        finally:
            a.stop()
