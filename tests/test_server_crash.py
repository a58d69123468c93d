"""Nothing lost when the Jupyter server is SIGKILLed: 100 runs in flight and 1,000 events being
delivered to two subscriptions (the SQLite store and bus). After a restart on the same home every
run is settled (finished, or FAILED as interrupted, saying so), every acknowledged event has
started exactly one run per subscription, and no secret, function or subscription is lost or
changed. A real `jupyter dispatch` process, killed without warning; on the SQLite bus and on
NATS JetStream (a stream of the test's own, on the NATS server at 127.0.0.1:4222)."""

from __future__ import annotations

import collections
import json
import signal
import threading
import time
import uuid

import psutil
import pytest

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus
from tests.events.conftest import nats_url  # noqa: F401  (the fixture)
from tests.server.live import LiveServer

EVENTS = 1000
IN_FLIGHT = 100
INTERRUPTED = "interrupted"


def slow(seconds):
    import time

    time.sleep(seconds)
    return seconds


def on_event(ctx, payload):
    import time

    # Slow enough that the events' runs are still going on at the kill (at 10 ms, NATS delivered
    # and ran every one of them first once the server had got faster).
    time.sleep(0.03)
    return {"n": payload["n"], "event": ctx.event["id"]}


def _all_runs(client, function):
    return client.list_runs(function=function, limit=100_000)


def _settled(client, function, count, budget=240.0):
    """The runs of `function` once there are `count` and all have finished (bounded)."""
    deadline = time.monotonic() + budget
    while True:
        runs = _all_runs(client, function)
        if len(runs) >= count and all(RunStatus(r.status).finished for r in runs):
            return runs
        assert time.monotonic() < deadline, (
            f"{function}: {len(runs)} runs of {count}, "
            f"{sum(not RunStatus(r.status).finished for r in runs)} unfinished after {budget}s")
        time.sleep(0.5)


class Emitter(threading.Thread):
    """Events published one after another until the server dies: `attempted` ids were sent,
    `acknowledged` ids were answered 202 (the bus had them)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.client = dk.connect(url, token=token)
        self.attempted: list[str] = []
        self.acknowledged: list[str] = []

    def run(self) -> None:
        for n in range(100_000):
            event_id = f"late-{n}"
            self.attempted.append(event_id)
            try:
                self.client.emit("job.created", {"n": n}, id=event_id)
            except Exception:
                return  # the server is gone
            self.acknowledged.append(event_id)


def _check_settled(run):
    """A run after the restart: finished, and if it failed because of the kill, saying so."""
    assert RunStatus(run.status).finished, run
    if run.status != RunStatus.SUCCEEDED:
        assert run.status == RunStatus.FAILED and run.error.type == "SystemError", run
        assert INTERRUPTED in run.error.message, run.error


@pytest.fixture(params=["sqlite", "nats"])
def bus_options(request, tmp_path):
    """The server options of each bus (a config file), and the NATS stream dropped afterwards."""
    if request.param == "sqlite":
        yield []
        return
    url = request.getfixturevalue("nats_url")
    stream = f"CRASH_{uuid.uuid4().hex[:12].upper()}"
    config = tmp_path / "nats_config.json"
    config.write_text(json.dumps({"DispatchApp": {"bus": "nats", "plugin_options": {
        "nats": {"url": url, "stream": stream, "ack_wait": 2.0, "retry_base": 0.05, "retry_max": 0.2}}}}))
    yield [f"--config={config}"]
    import asyncio

    import nats

    async def drop() -> None:
        nc = await nats.connect(url)
        for each in (stream, f"{stream}_DEAD"):
            try:
                await nc.jetstream().delete_stream(each)
            except Exception:
                pass
        await nc.close()

    asyncio.run(drop())


def test_a_server_killed_with_runs_and_events_in_flight_loses_nothing(tmp_path, bus_options):
    home = tmp_path / "home"
    server = LiveServer(home, tmp_path / "work-1", extra=bus_options)
    try:
        with dk.connect(server.url, token=server.token) as client:
            client.create_secret("db", {"password": "s3cret-1", "user": "lin"})
            client.create_secret("api", {"token": "t0ken-2"})
            client.deploy(slow, max_workers=2)
            client.deploy(on_event, name="on_a", max_workers=2)
            client.deploy(on_event, name="on_b", max_workers=2)
            client.subscribe("on_a", event_type="job.*", name="to-a")
            client.subscribe("on_b", event_type="job.created", name="to-b")
            before = {
                "functions": {f.name: (f.id, f.revision, f.source_digest if hasattr(f, "source_digest") else None)
                              for f in client.list_functions()},
                "subscriptions": {s.name: s.to_dict() for s in client.list_subscriptions()},
                "secrets": {name: client.get_secret(name).values for name in ("db", "api")},
            }
            acknowledged = [client.emit("job.created", {"n": n})["id"] for n in range(EVENTS)]
            flying = [client.invoke("slow", 0.3, wait=False).id for _ in range(IN_FLIGHT)]
            emitter = Emitter(server.url, server.token)  # and more events arriving at the kill
            emitter.start()
            deadline = time.monotonic() + 60
            while len(emitter.acknowledged) < 50:
                assert time.monotonic() < deadline and emitter.is_alive(), "the emitter stalled"
                time.sleep(0.01)
            # the kill finds both still under way: unfinished slow runs and undelivered events
            unfinished = [r for r in _all_runs(client, "slow") if not RunStatus(r.status).finished]
            assert unfinished, "every slow run finished before the kill: the test proves nothing"
            # Only the first EVENTS count here: the late events' runs would make up the number.
            first = set(acknowledged)
            finished = sum(RunStatus(r.status).finished and (r.event or {}).get("id") in first
                           for f in ("on_a", "on_b") for r in _all_runs(client, f))
            assert finished < 2 * EVENTS, "every event's runs finished before the kill"
        children = psutil.Process(server.process.pid).children(recursive=True)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        emitter.join(30)
        emitter.client.close()
        # the workers and fork servers of the killed server do not outlive it
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    finally:
        server.stop()

    restart = time.time()
    restarted = LiveServer(home, tmp_path / "work-2", extra=bus_options)
    try:
        with dk.connect(restarted.url, token=restarted.token) as client:
            after = {
                "functions": {f.name: (f.id, f.revision, f.source_digest if hasattr(f, "source_digest") else None)
                              for f in client.list_functions()},
                "subscriptions": {s.name: s.to_dict() for s in client.list_subscriptions()},
                "secrets": {name: client.get_secret(name).values for name in ("db", "api")},
            }
            assert after == before  # nothing lost or changed, secrets still decrypt

            slow_runs = _settled(client, "slow", IN_FLIGHT)
            assert sorted(r.id for r in slow_runs) == sorted(flying)
            for run in slow_runs:
                _check_settled(run)
            outcomes = collections.Counter(str(r.status) for r in slow_runs)
            assert outcomes["FAILED"] > 0, outcomes  # some were cut off by the kill, and say so

            for function in ("on_a", "on_b"):
                runs = _settled(client, function, EVENTS + len(emitter.acknowledged))
                per_event = collections.Counter(r.event["id"] for r in runs)
                # every acknowledged event, and of those sent at the kill at most the ones sent
                assert set(acknowledged) | set(emitter.acknowledged) <= set(per_event), function
                assert set(per_event) <= set(acknowledged) | set(emitter.attempted), function
                assert max(per_event.values()) == 1, [e for e, n in per_event.items() if n > 1][:5]
                for run in runs:
                    _check_settled(run)
                print(function, dict(collections.Counter(str(r.status) for r in runs)),
                      "recorded after the restart:", sum(r.queued > restart for r in runs),
                      "late events sent/acknowledged/run:", len(emitter.attempted), len(emitter.acknowledged),
                      sum(e.startswith("late-") for e in per_event))
            print("slow", dict(outcomes))
            time.sleep(1.0)  # nothing more arrives late: no event runs twice
            assert [len(_all_runs(client, f)) for f in ("on_a", "on_b")] == [len(per_event)] * 2
            # the functions still work after the restart
            assert client.invoke("slow", 0, wait=True).output == 0
    finally:
        restarted.stop()
