"""The NATS JetStream bus: Dispatch processes share one stream; each subscription gets each event
once across them, and none is lost when a process is killed mid-stream."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus
from dispatch_kernel.settings import Settings

from .helpers import handle, wait_runs

ROOT = Path(__file__).resolve().parents[2]


def _settings(home, url, stream):
    return Settings(home=home, bus="nats", plugin_options={"nats": {"url": url, "stream": stream, "ack_wait": 2.0,
                                                         "retry_base": 0.05, "retry_max": 0.2}})


@pytest.fixture
def stream(nats_url):
    name = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    yield name
    import asyncio

    import nats

    async def drop() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        for each in (name, f"{name}_DEAD"):
            try:
                await js.delete_stream(each)
            except Exception:
                pass
        await nc.close()

    asyncio.run(drop())


def test_emit_through_nats_runs_the_subscriber(home, nats_url, stream):
    with dk.connect(settings=_settings(home, nats_url, stream)) as core:
        core.deploy(handle, name="on_order")
        core.subscribe("on_order", event_type="order.*")
        time.sleep(0.3)
        event = core.emit("order.created", {"id": 7}, source="shop")
        core.emit("order.created", {"id": 7}, source="shop", id=event["id"])  # a repeat: dropped
        core.emit("other.thing", {"id": 8})
        [run] = wait_runs(core, "on_order", 1, settle=0.5)
        assert run.status == RunStatus.SUCCEEDED
        assert run.event["id"] == event["id"] and run.input == {"id": 7}


def test_failed_deliveries_go_to_the_dead_letters(home, nats_url, stream):
    with dk.connect(settings=_settings(home, nats_url, stream)) as core:
        core.subscribe("missing", event_type="job.done", max_attempts=2)
        time.sleep(0.3)
        core.emit("job.done", {"n": 1}, id="e1")
        deadline = time.monotonic() + 15
        while not core.dead_letters():
            assert time.monotonic() < deadline, "nothing reached the dead letters"
            time.sleep(0.1)
        [letter] = core.dead_letters()
        assert letter["attempts"] == 2 and letter["event"]["id"] == "e1"


def test_two_processes_share_the_stream_and_a_killed_one_loses_nothing(home, nats_url, stream):
    total = 1000
    settings = _settings(home, nats_url, stream)
    with dk.connect(settings=settings) as core:
        core.deploy(handle, name="fa", max_workers=4)
        core.deploy(handle, name="fb", max_workers=4)
        core.subscribe("fa", event_type="order.*")
        core.subscribe("fb", event_type="order.created")
        other = subprocess.Popen([sys.executable, "-m", "tests.events.nats_process", str(home), stream, nats_url],
                                 cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            assert other.stdout.readline().strip() == "ready"
            ids = []
            for n in range(total):
                ids.append(core.emit("order.created", {"n": n})["id"])
                if n == total // 2:
                    time.sleep(0.5)  # let the other process take its share
                    other.send_signal(signal.SIGKILL)
            other.wait(10)
            runs_a = wait_runs(core, "fa", total, timeout=90, finished=False, settle=3.0)
            runs_b = wait_runs(core, "fb", total, timeout=90, finished=False, settle=0.5)
            assert len(runs_a) == total and len(runs_b) == total
            assert sorted(r.event["id"] for r in runs_a) == sorted(ids)
            assert sorted(r.event["id"] for r in runs_b) == sorted(ids)
            # the runs the killed process had recorded but not finished were run again here
            runs_a = wait_runs(core, "fa", total, timeout=60)
            runs_b = wait_runs(core, "fb", total, timeout=60)
            assert {r.status for r in runs_a + runs_b} == {RunStatus.SUCCEEDED}
        finally:
            if other.poll() is None:
                other.kill()
                other.wait(10)
    # both processes really took part
    with sqlite3.connect(home / "dispatch.db") as db:
        hosts = db.execute("SELECT host, COUNT(*) FROM runs GROUP BY host").fetchall()
    assert len(hosts) == 2, hosts


def test_dead_letters_on_nats_are_replayed_once(home, nats_url, stream):
    """A delivery given up goes to the dead-letter stream with an id; a replay is a new run tagged
    with it, and the letter is taken out of the stream."""
    with dk.connect(settings=_settings(home, nats_url, stream)) as core:
        core.deploy(handle, name="on_order")
        core.subscribe("on_order", event_type="order.*", name="orders", max_attempts=2)
        core.delete_function("on_order")
        time.sleep(0.3)
        event = core.emit("order.created", {"id": 7}, source="shop")
        deadline = time.monotonic() + 30
        while not (letters := core.dead_letters("orders")):
            assert time.monotonic() < deadline, "no dead letter"
            time.sleep(0.05)
        [letter] = letters
        assert letter["event"]["id"] == event["id"] and letter["attempts"] == 2 and letter["id"]
        core.deploy(handle, name="on_order")
        replay = core.replay_dead_letter(letter["id"])
        assert replay.tags == {"dispatch/replay-of": letter["id"]}
        assert core.wait_run(replay.id, timeout=30).output["payload"] == {"id": 7}
        assert core.dead_letters() == []
        with pytest.raises(dk.NotFoundError):
            core.replay_dead_letter(letter["id"])
