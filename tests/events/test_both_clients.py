"""emit, subscribe and event sources through the Client protocol: the same test over the
in-process client ("local") and the REST client on a real Jupyter server ("rest")."""

from __future__ import annotations

import time

import pytest

import dispatch_kernel as dk
from dispatch_kernel.model import InvalidRequestError, NotFoundError, RunStatus
from tests.server.live import connected

from .helpers import handle


@pytest.fixture(params=["local", "rest"])
def client(request, home, tmp_path):
    with connected(request.param, home, tmp_path / "server") as the_client:
        yield the_client


def _finished_runs(client, function, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in client.list_runs(function=function) if RunStatus(r.status).finished]
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, f"{len(runs)} of {count} runs of {function}"
        time.sleep(0.05)


def test_emit_subscribe_and_sources_over_either_client(client):
    assert isinstance(client, dk.Client)
    client.deploy(handle, name="on_order")
    sub = client.subscribe("on_order", event_type="order.*", name="orders", filters={"source": "shop"})
    assert isinstance(sub, dk.Subscription) and sub.event_type == "order.*" and sub.filters == {"source": "shop"}
    assert client.get_subscription("orders").function == "on_order"
    event = client.emit("order.created", {"id": 7}, source="shop")
    assert event["specversion"] == "1.0" and event["type"] == "order.created" and event["source"] == "shop"
    client.emit("order.created", {"id": 8}, source="elsewhere")  # filtered out
    whole = {"specversion": "1.0", "id": "whole-1", "source": "shop", "type": "order.paid", "data": {"id": 9}}
    assert client.emit(whole)["id"] == "whole-1"
    runs = _finished_runs(client, "on_order", 2)
    time.sleep(0.3)
    runs = client.list_runs(function="on_order")
    assert sorted(r.input["id"] for r in runs) == [7, 9]
    assert {r.event["id"] for r in runs} == {event["id"], "whole-1"}

    nightly = client.create_event_source("nightly", type="schedule",
                                         config={"cron": "0 2 * * *", "timezone": "Europe/Berlin"})
    hook = client.create_event_source("hook", type="webhook")
    assert isinstance(nightly, dk.EventSource) and nightly.config["cron"] == "0 2 * * *"
    assert hook.type == "webhook" and hook.config["token"]
    assert "token" not in client.get_event_source("hook").config
    assert [s.name for s in client.list_event_sources()] == ["hook", "nightly"]
    with pytest.raises(InvalidRequestError):
        client.subscribe("on_order", event_type="a.*.b")
    with pytest.raises(InvalidRequestError):
        client.create_event_source("bad", type="no-such-type")
    client.delete_event_source("nightly")
    client.delete_subscription("orders")
    with pytest.raises(NotFoundError):
        client.get_subscription("orders")
    with pytest.raises(NotFoundError):
        client.get_event_source("nightly")
    assert [s.name for s in client.list_event_sources()] == ["hook"]
    assert client.list_subscriptions() == []
