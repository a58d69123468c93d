"""Two real `jupyter dispatch` servers on one PostgreSQL database behave as one Dispatch.

Each server has its own home (its own workers, journal, environments) and the same store and
secret key, as two machines of a team would.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from cryptography.fernet import Fernet

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus
from tests.postgres_support import fresh_database
from tests.server.live import LiveServer

WAIT = 30.0  # seconds: generous, the machine is shared


def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


def double(x):
    return 2 * x


def triple(x):
    return 3 * x


def tick(ctx, payload):
    return payload


class Pair:
    """Servers A and B on one database."""

    def __init__(self, tmp_path, dsn: str, extra: list[str] | None = None) -> None:
        self.dsn = dsn
        env = {"DISPATCH_SECRET_KEY": Fernet.generate_key().decode(), "DISPATCH_STORE_URL": dsn}
        self.a = LiveServer(tmp_path / "a-home", tmp_path / "a", env=env, extra=extra)
        try:
            self.b = LiveServer(tmp_path / "b-home", tmp_path / "b", env=env, extra=extra)
        except BaseException:
            self.a.stop()
            raise
        self.clients = [dk.connect(self.a.url, token=self.a.token), dk.connect(self.b.url, token=self.b.token)]

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for server in (self.a, self.b):
            server.stop()


@pytest.fixture
def pair(tmp_path) -> Iterator[Pair]:
    with fresh_database() as dsn:
        servers = Pair(tmp_path, dsn)
        try:
            yield servers
        finally:
            servers.stop()


def until(check, budget: float = WAIT, what: str = "the condition"):
    """check()'s first true value, looked for every 20 ms within `budget` seconds."""
    deadline = time.monotonic() + budget
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {budget:g}s"
        time.sleep(0.02)


def test_deployed_on_a_run_on_b_deleted_on_b_gone_on_a(pair):
    a, b = pair.clients
    a.deploy(double)
    assert [f.name for f in b.list_functions()] == ["double"]
    run = b.invoke("double", 21)  # B has no workers for it: it starts them from the stored package
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, 42)
    assert a.wait_run(run.id, timeout=WAIT).output == 42  # its record reaches the database within a flush
    a.deploy(triple, name="double")  # redeployed on A: B runs the new code
    assert until(lambda: b.invoke("double", 2).output == 6, 5, "B running the new code")
    b.delete_function("double")
    assert a.list_functions() == []
    with pytest.raises(dk.NotFoundError):
        a.invoke("double", 1)


def test_runs_of_b_are_watched_from_a(pair):
    a, b = pair.clients
    a.deploy(double)
    seen: list[tuple[str, RunStatus]] = []
    done = threading.Event()

    def watcher(run):
        seen.append((run.id, RunStatus(run.status)))
        if RunStatus(run.status).finished:
            done.set()

    stop = a.watch_runs(watcher)
    try:
        time.sleep(0.5)  # the stream is open
        run = b.invoke("double", 5)
        assert done.wait(WAIT), seen
        assert (run.id, RunStatus.SUCCEEDED) in seen
        assert a.wait_run(run.id, timeout=WAIT).output == 10
    finally:
        stop()


def test_a_run_on_b_is_cancelled_from_a(pair):
    a, b = pair.clients
    a.deploy(nap)
    b.invoke("nap", 0)  # B's worker is up
    run = b.invoke("nap", 60, wait=False)
    until(lambda: b.get_run(run.id).status == RunStatus.RUNNING, what="the run starting on B")
    time.sleep(0.2)  # on its worker
    cancelled = a.cancel_run(run.id)
    assert cancelled.status == RunStatus.CANCELLED
    assert b.get_run(run.id).status == RunStatus.CANCELLED


def test_one_schedule_on_two_servers_starts_one_run_per_tick(pair):
    a, b = pair.clients
    a.deploy(tick)
    a.subscribe("tick", event_type="schedule.tick")
    b.create_event_source("every-second", type="schedule", config={"period": "1s"})
    runs = until(lambda: [r for r in a.list_runs(function="tick", limit=1000)
                          if RunStatus(r.status).finished][19:] and a.list_runs(function="tick", limit=1000),
                 60, "20 ticks")
    b.delete_event_source("every-second")
    ticks = [_stamp(r.input["scheduled"]) for r in runs]
    assert len(ticks) == len(set(ticks)), "a tick started more than one run"
    ordered = sorted(ticks)
    assert all(later - earlier == pytest.approx(1.0, abs=0.01) for earlier, later in zip(ordered, ordered[1:]))


def test_a_killed_server_s_runs_and_sources_are_taken_over(pair):
    a, b = pair.clients
    a.deploy(nap)
    a.deploy(tick)
    a.subscribe("tick", event_type="schedule.tick")
    b.create_event_source("every-second", type="schedule", config={"period": "1s"})
    until(lambda: len(a.list_runs(function="tick")) >= 2, what="ticks before the kill")
    run = b.invoke("nap", 120, wait=False)
    until(lambda: b.get_run(run.id).status == RunStatus.RUNNING, what="the run starting on B")
    until(lambda: a.get_run(run.id), what="the run recorded")  # in the database, not only B's journal
    pid = pair.b.process.pid
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    pair.b.process.wait(10)
    settled = until(lambda: (lambda r: r if RunStatus(r.status).finished else None)(a.get_run(run.id)),
                    what="the killed server's run settled")
    took = time.monotonic() - killed
    print(f"the killed server's run was settled {took:.1f}s after the kill")  # shown with -s
    assert settled.status == RunStatus.FAILED and settled.error.type == "SystemError"
    assert "interrupted" in settled.error.message and f"-{pid}-" in settled.error.message
    assert took < 10 + 2, f"settled {took:.1f}s after the kill"  # the 10 s, and a round
    # The schedule goes on from A: ticks after the kill, none of them twice.
    last_before = max(_stamp(r.input["scheduled"]) for r in a.list_runs(function="tick"))
    runs = until(lambda: [r for r in a.list_runs(function="tick", limit=1000)
                          if _stamp(r.input["scheduled"]) > last_before + 2], what="ticks after the kill")
    ticks = [_stamp(r.input["scheduled"]) for r in a.list_runs(function="tick", limit=1000)]
    assert len(ticks) == len(set(ticks))
    assert runs


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_server_with_another_secret_key_refuses_to_start(pair, tmp_path):
    a, _ = pair.clients
    a.create_secret("login", {"password": "hunter2"})
    env = {"DISPATCH_SECRET_KEY": Fernet.generate_key().decode(), "DISPATCH_STORE_URL": pair.dsn}
    with pytest.raises(RuntimeError, match="the server exited") as refused:
        LiveServer(tmp_path / "c-home", tmp_path / "c", env=env)
    assert "not the key of the store's secrets" in str(refused.value)
    assert a.get_secret("login").values == {"password": "hunter2"}  # nothing changed for the others
