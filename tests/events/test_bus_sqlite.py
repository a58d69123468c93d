"""The embedded bus: emit -> subscribed runs, matching, dedupe, retries, dead letters, restart."""

from __future__ import annotations

import pytest

import dispatch_kernel as dk
from dispatch_kernel.events.subscriptions import type_matches
from dispatch_kernel.model import InvalidRequestError, RunStatus
from dispatch_kernel.settings import Settings

from .helpers import handle, wait_runs


@pytest.fixture
def core(home):
    with dk.connect(settings=Settings(home=home, plugin_options={"sqlite": {"retry_base": 0.05, "retry_max": 0.2}})) as dispatch:
        yield dispatch


def test_type_patterns():
    assert type_matches("vm.*", "vm.powered.off")
    assert type_matches("vm.powered.*", "vm.powered.off")
    assert not type_matches("vm.*", "vmx.created")
    assert not type_matches("vm.*", "vm")
    assert type_matches("order.created", "order.created")
    assert not type_matches("order.created", "order.created.late")
    assert type_matches("*", "anything")


def test_emit_runs_the_subscribed_function_with_the_event(core):
    core.deploy(handle, name="on_order")
    sub = core.subscribe("on_order", event_type="order.*")
    assert sub.event_type == "order.*" and sub.status == "READY"
    event = core.emit("order.created", {"id": 7}, source="shop")
    assert event["specversion"] == "1.0" and event["source"] == "shop"
    [run] = wait_runs(core, "on_order", 1)
    assert run.status == RunStatus.SUCCEEDED
    assert run.input == {"id": 7}
    assert run.event["id"] == event["id"] and run.event["type"] == "order.created"
    assert run.output == {"payload": {"id": 7}, "event": event}
    # the wildcard is a dotted prefix, not a substring
    core.emit("orders.created", {"id": 8})
    core.emit("order", {"id": 9})
    assert len(wait_runs(core, "on_order", 1, settle=0.3)) == 1


def test_attribute_filters_and_several_subscriptions(core):
    core.deploy(handle, name="fa")
    core.deploy(handle, name="fb")
    core.subscribe("fa", event_type="vm.*", filters={"source": "vc1"})
    core.subscribe("fb", event_type="vm.powered.off", filters={"region": "eu"})
    core.emit("vm.powered.off", {"vm": 1}, source="vc1", extensions={"region": "us"})
    core.emit("vm.powered.off", {"vm": 2}, source="vc2", extensions={"region": "eu"})
    [a] = wait_runs(core, "fa", 1, settle=0.3)
    [b] = wait_runs(core, "fb", 1, settle=0.3)
    assert a.input == {"vm": 1} and b.input == {"vm": 2}


def test_a_repeated_event_id_is_delivered_once_per_subscription(core):
    core.deploy(handle, name="once")
    core.subscribe("once", event_type="ping")
    core.subscribe("once", event_type="*", name="all")
    for _ in range(3):
        core.emit("ping", {"n": 1}, id="same-id")
    runs = wait_runs(core, "once", 2, settle=0.3)
    assert len(runs) == 2
    assert len({r.id for r in runs}) == 2


def test_bad_events_and_subscriptions_are_refused(core):
    core.deploy(handle, name="f")
    with pytest.raises(InvalidRequestError):
        core.subscribe("f", event_type="vm.*.off")
    with pytest.raises(InvalidRequestError):
        core.emit("", {"x": 1})
    with pytest.raises(InvalidRequestError):
        core.emit({"type": "x", "source": "s", "id": "1"})  # no specversion
    with pytest.raises(InvalidRequestError):
        core.emit("x", 1, extensions={"Bad-Name": 1})
    assert core.list_subscriptions() == []


def test_failed_deliveries_retry_with_backoff_then_dead_letter(core):
    core.subscribe("missing", event_type="job.done", max_attempts=3)
    core.emit("job.done", {"n": 1}, id="e1")
    deadline = __import__("time").monotonic() + 10
    while not core.dead_letters() and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    [letter] = core.dead_letters()
    assert letter["attempts"] == 3
    assert letter["event"]["id"] == "e1"
    assert "missing" in letter["error"]
    assert letter["subscription"] == core.list_subscriptions()[0].name


def test_a_delivery_retried_until_the_function_exists(core):
    core.subscribe("late", event_type="job.done", max_attempts=20)
    core.emit("job.done", {"n": 1})
    import time

    time.sleep(0.3)
    core.deploy(handle, name="late")
    [run] = wait_runs(core, "late", 1, settle=0.3)
    assert run.status == RunStatus.SUCCEEDED and run.input == {"n": 1}
    assert core.dead_letters() == []


def test_no_event_is_lost_across_a_restart(home):
    settings = Settings(home=home, plugin_options={"sqlite": {"retry_base": 0.05}})
    with dk.connect(settings=settings) as first:
        first.subscribe("later", event_type="job.*")  # the function does not exist yet: deliveries wait
        for n in range(20):
            first.emit("job.done", {"n": n})
    with dk.connect(settings=settings) as second:
        second.deploy(handle, name="later")
        runs = wait_runs(second, "later", 20, settle=0.5)
        assert sorted(r.input["n"] for r in runs) == list(range(20))
        assert second.dispatch.events.bus.pending() == 0


def test_old_finished_deliveries_are_pruned_but_dead_letters_stay(core):
    import time

    core.deploy(handle, name="f")
    core.subscribe("f", event_type="a")
    core.subscribe("missing", event_type="a", name="doomed", max_attempts=1)
    core.emit("a", 1, id="old")
    wait_runs(core, "f", 1)
    deadline = time.monotonic() + 10
    while not core.dead_letters() and time.monotonic() < deadline:
        time.sleep(0.05)
    bus = core.dispatch.events.bus
    bus.prune(now=time.time() + bus.dedupe_window + 1)
    with bus._lock:
        states = [row[0] for row in bus._db.execute("SELECT state FROM deliveries")]
    assert states == ["dead"]
    assert core.dead_letters()[0]["event"]["id"] == "old"


def test_a_killed_process_loses_no_event_and_none_runs_twice(home):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    settings = Settings(home=home)
    with dk.connect(settings=settings) as first:
        first.deploy(handle, name="worker")
        first.subscribe("worker", event_type="job.*")
    emitter = subprocess.Popen([sys.executable, "-m", "tests.events.emit_process", str(home), "100000"],
                               cwd=root, stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(root)))
    emitted = []
    try:
        for line in emitter.stdout:
            emitted.append(line.strip())
            if len(emitted) == 300:
                emitter.send_signal(signal.SIGKILL)
                break
        emitter.wait(10)
        emitted.extend(line.strip() for line in emitter.stdout)  # what it printed before dying
    finally:
        if emitter.poll() is None:
            emitter.kill()
    with dk.connect(settings=settings) as second:
        runs = wait_runs(second, "worker", len(emitted), timeout=60, settle=1.0)
        ids = [r.event["id"] for r in runs]
        assert len(ids) == len(set(ids))  # none twice
        assert set(emitted) <= set(ids)  # none lost
        for run in runs:  # runs the killed process had queued are settled, the rest ran here
            assert run.status == RunStatus.SUCCEEDED or "interrupted" in run.error.message
        assert second.dispatch.events.bus.pending() == 0
