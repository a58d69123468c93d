"""Organizations apart at run time: the run stream of one never carries another's runs, and an
event emitted in one never starts runs of another's subscriptions (through the REST client)."""

from __future__ import annotations

import time

import pytest

import dispatch_kernel as dk
from tests.server.live import ThreadedServer


def add(x, y):
    return x + y


def greet(ctx, payload):
    return {"hello": payload}


def _eventually(predicate, budget=30.0):
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def server(tmp_path):
    server = ThreadedServer(tmp_path / "home", tmp_path / "work")
    yield server
    server.stop()


def test_streams_and_events_stay_in_their_organization(server):
    with dk.connect(server.url, token=server.token) as owner:
        owner.create_organization("alpha")
        owner.create_organization("beta")
    with dk.connect(server.url, token=server.token, org="alpha") as alpha, \
            dk.connect(server.url, token=server.token, org="beta") as beta:
        alpha.deploy(add, name="adder")
        alpha.deploy(greet, name="greeter")
        alpha.subscribe("greeter", event_type="ping", name="alpha-pings")
        beta.deploy(greet, name="greeter")
        beta.subscribe("greeter", event_type="ping", name="beta-pings")
        seen = []
        stop = beta.watch_runs(seen.append)
        try:
            time.sleep(0.2)  # the stream is open before the runs start
            assert alpha.call("adder", 1, 2) == 3
            beta.emit("ping", {"n": 1})
            assert _eventually(lambda: any(r.function == "greeter" and r.status == dk.RunStatus.SUCCEEDED
                                           for r in seen)), seen
        finally:
            stop()
        assert {r.org for r in seen} == {"beta"}
        assert all(r.function != "adder" for r in seen)
        beta_runs = beta.list_runs()
        assert [r.event["type"] for r in beta_runs] == ["ping"]
        # alpha's subscription to the same type saw nothing: its only run is the direct call.
        assert [r.function for r in alpha.list_runs()] == ["adder"]
        alpha.emit("ping", {"n": 2})  # and alpha's own events do reach it
        assert _eventually(lambda: len(alpha.list_runs(function="greeter")) == 1)
        assert len(beta.list_runs()) == 1
