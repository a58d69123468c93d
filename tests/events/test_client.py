"""The issue's own lines, through the in-process client."""

from __future__ import annotations

import pytest

import dispatch_kernel as dk
from dispatch_kernel.model import DispatchError
from dispatch_kernel.settings import Settings

from .helpers import handle, wait_runs


def test_the_client_surface(client):
    client.deploy(handle, name="on_order")
    sub = client.subscribe("on_order", event_type="order.*")
    event = client.emit("order.created", {"id": 7}, source="shop")
    [run] = wait_runs(client, "on_order", 1)
    assert run.event["id"] == event["id"] and run.output["payload"] == {"id": 7}
    nightly = client.create_event_source("nightly", type="schedule",
                                         config={"cron": "0 2 * * *", "timezone": "Europe/Berlin"})
    hook = client.create_event_source("hook", type="webhook")
    assert nightly.config["cron"] == "0 2 * * *" and hook.config["token"]
    assert [s.name for s in client.list_event_sources()] == ["hook", "nightly"]
    assert [s.name for s in client.list_subscriptions()] == [sub.name]
    client.delete_event_source("nightly")
    client.delete_subscription(sub.name)
    assert [s.name for s in client.list_event_sources()] == ["hook"]
    assert client.list_subscriptions() == [] and client.dead_letters() == []


def test_an_unreachable_bus_does_not_break_the_core(home):
    settings = Settings(home=home, bus="nats", plugin_options={"nats": {"url": "nats://127.0.0.1:1", "connect_timeout": 1}})
    with dk.connect(settings=settings) as core:
        core.deploy(handle, name="f")
        assert core.call("f", {"x": 1})["payload"] == {"x": 1}
        with pytest.raises(Exception):
            core.emit("a", 1)
    with dk.connect(settings=Settings(home=home, bus="nonesuch")) as core:
        with pytest.raises(DispatchError):
            core.emit("a", 1)
