"""`dispatch emit`, subscriptions and event sources from the command line, as a user types them:
against a live `jupyter dispatch` server (after `dispatch login`) and the embedded default."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.server.live import LiveServer
from tests.test_cli import assert_one_line_error, dispatch, workdir  # noqa: F401  (the fixture)

HANDLE = "def handle(ctx, payload):\n    return {'payload': payload, 'type': ctx.event['type']}\n"


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path / "server-home", tmp_path / "server-work")
    yield live
    live.stop()


def _wait_for_runs(function: str, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = json.loads(dispatch("get", "runs", function, "-o", "json").stdout)
        done = [r for r in runs if r["status"] in ("SUCCEEDED", "FAILED")]
        if len(done) >= count:
            return done
        assert time.monotonic() < deadline, f"{len(done)} of {count} runs of {function}"
        time.sleep(0.1)


def test_events_against_a_live_server(workdir, server):
    (workdir / "on_order.py").write_text(HANDLE)
    dispatch("login", server.url, "--token", server.token)
    dispatch("create", "function", "on_order", "on_order.py")
    created = dispatch("create", "subscription", "on_order", "--event-type", "order.*", "--name", "orders",
                       "--filter", "source=shop")
    assert "created subscription orders (order.* -> on_order)" in created.stdout
    listed = dispatch("get", "subscriptions").stdout.splitlines()
    assert listed[0].split()[:3] == ["NAME", "EVENT", "TYPE"]
    assert listed[1].split()[:4] == ["orders", "order.*", "on_order", "source=shop"]
    as_json = json.loads(dispatch("get", "subscriptions", "-o", "json").stdout)
    assert [s["name"] for s in as_json] == ["orders"] and as_json[0]["filters"] == {"source": "shop"}
    assert yaml.safe_load(dispatch("get", "subscription", "orders", "-o", "yaml").stdout)["event_type"] == "order.*"

    emitted = dispatch("emit", "order.created", "--data", '{"id": 7}', "--source", "shop")
    assert emitted.stdout.startswith("emitted order.created (id ")
    event = json.loads(dispatch("emit", "order.paid", "--data", '{"id": 8}', "--source", "shop",
                                "-o", "json").stdout)
    assert event["specversion"] == "1.0" and event["data"] == {"id": 8}
    runs = _wait_for_runs("on_order", 2)
    assert sorted(r["input"]["id"] for r in runs) == [7, 8]

    hook = dispatch("create", "eventsource", "hook", "--type", "webhook", "--config", '{"event_type": "git.push"}')
    assert "created event source hook (webhook)" in hook.stdout and "webhook token (shown once): " in hook.stdout
    dispatch("create", "eventsource", "nightly", "--type", "schedule",
             "--config", '{"cron": "0 2 * * *", "timezone": "Europe/Berlin"}')
    sources = dispatch("get", "eventsources").stdout.splitlines()
    assert sources[0].split() == ["NAME", "TYPE", "STATUS", "SECRETS", "MODIFIED"]
    assert [line.split()[:2] for line in sources[1:]] == [["hook", "webhook"], ["nightly", "schedule"]]
    shown = json.loads(dispatch("get", "eventsource", "hook", "-o", "json").stdout)
    assert shown["type"] == "webhook" and "token" not in shown["config"] and "token_sha256" not in shown["config"]

    assert "deleted eventsource nightly" in dispatch("delete", "eventsource", "nightly").stdout
    assert "deleted subscription orders" in dispatch("delete", "subscription", "orders").stdout
    assert json.loads(dispatch("get", "subscriptions", "-o", "json").stdout) == []
    assert_one_line_error(dispatch("get", "subscription", "orders", ok=False), "orders")
    assert_one_line_error(dispatch("create", "subscription", "on_order", "--event-type", "a.*.b", ok=False), "")
    assert_one_line_error(dispatch("create", "subscription", "on_order", ok=False), "--event-type")
    assert_one_line_error(dispatch("create", "eventsource", "x", "--type", "schedule", "--config", "{no",
                                   ok=False), "--config")
    assert_one_line_error(dispatch("emit", "order.created", "--data", "{no", ok=False), "--data is not JSON")


def test_subscription_and_eventsource_documents_in_yaml(workdir, server):
    (workdir / "on_order.py").write_text(HANDLE)
    docs = [
        {"kind": "Subscription", "name": "orders", "function": "on_order", "event_type": "order.*",
         "filters": {"source": "shop"}, "max_attempts": 3},
        {"kind": "EventSource", "name": "nightly", "type": "schedule", "config": {"cron": "0 2 * * *"}},
        {"kind": "Function", "name": "on_order", "file": "on_order.py"},
    ]
    (workdir / "events.yaml").write_text(yaml.safe_dump_all(docs))
    dispatch("login", server.url, "--token", server.token)
    out = dispatch("create", "-f", "events.yaml").stdout.splitlines()
    assert out[0].startswith("created function on_order")  # functions before what refers to them
    assert out[1:] == ["created event source nightly (schedule)", "created subscription orders (order.* -> on_order)"]
    [sub] = json.loads(dispatch("get", "subscriptions", "-o", "json").stdout)
    assert sub["max_attempts"] == 3 and sub["filters"] == {"source": "shop"}
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"kind": "Subscription", "name": "x", "function": "f"}))
    assert_one_line_error(dispatch("create", "-f", "bad.yaml", ok=False), "event_type")
    assert_one_line_error(dispatch("update", "-f", "events.yaml", ok=False), "cannot be updated")


def test_events_on_the_embedded_default(workdir):
    (workdir / "on_order.py").write_text(HANDLE)
    dispatch("create", "function", "on_order", "on_order.py")
    dispatch("create", "subscription", "on_order", "--event-type", "order.created")
    [sub] = json.loads(dispatch("get", "subscriptions", "-o", "json").stdout)
    assert sub["function"] == "on_order" and sub["event_type"] == "order.created"
    event = json.loads(dispatch("emit", "order.created", "--data", '{"id": 1}', "-o", "json").stdout)
    assert event["type"] == "order.created" and event["data"] == {"id": 1}
    dispatch("create", "eventsource", "nightly", "--type", "schedule", "--config", '{"cron": "0 2 * * *"}')
    assert "nightly" in dispatch("get", "eventsources").stdout
    dispatch("delete", "eventsource", "nightly")
    dispatch("delete", "subscription", sub["name"])
    assert json.loads(dispatch("get", "eventsources", "-o", "json").stdout) == []
    assert json.loads(dispatch("get", "subscriptions", "-o", "json").stdout) == []
