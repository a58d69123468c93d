"""subscriptions, event-sources, events and webhooks under dispatch/v1/ on a real Jupyter server."""

from __future__ import annotations

import asyncio
import json

from dispatch_kernel.model import RunStatus

from ...server.api import response_problems
from ..helpers import handle


async def _call(jp_fetch, method, *path, body=None, raw=None, headers=None):
    kwargs = {"method": method, "raise_error": False, "headers": dict(headers or {}),
              "allow_nonstandard_methods": True}
    if raw is not None:
        kwargs["body"] = raw
    elif body is not None:
        kwargs["body"] = json.dumps(body)
    elif method == "POST":
        kwargs["body"] = b""
    response = await jp_fetch("dispatch", "v1", *path, **kwargs)
    problems = response_problems(method, "/".join(path), response.code,
                                 response.headers.get("Content-Type", ""), response.body or b"")
    assert not problems, problems  # every answer as openapi.json describes it
    data = json.loads(response.body) if response.body else None
    if response.code >= 400:
        assert data["code"] == response.code and data["message"]
    return response.code, data


async def _runs(core, function, count, timeout=20.0):
    loop = asyncio.get_running_loop()
    for _ in range(int(timeout / 0.05)):
        runs = await loop.run_in_executor(None, lambda: core.runs.list_runs("default", function=function))
        if len([r for r in runs if RunStatus(r.status).finished]) >= count:
            return runs
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} runs of {function}")


async def test_subscriptions_events_and_content_modes(jp_fetch, jp_serverapp):
    core = jp_serverapp.web_app.settings["dispatch_kernel"].core
    await asyncio.get_running_loop().run_in_executor(None, lambda: core.functions.deploy(handle, name="on_order", org="default"))
    status, sub = await _call(jp_fetch, "POST", "subscriptions",
                              body={"function": "on_order", "event_type": "order.*", "name": "orders"})
    assert status == 201 and sub["event_type"] == "order.*"
    status, listed = await _call(jp_fetch, "GET", "subscriptions")
    assert [s["name"] for s in listed["items"]] == ["orders"]
    assert (await _call(jp_fetch, "POST", "subscriptions", body={"function": "f"}))[0] == 400
    assert (await _call(jp_fetch, "POST", "subscriptions",
                        body={"function": "f", "event_type": "a.*.b"}))[0] == 400

    status, event = await _call(jp_fetch, "POST", "events", body={"type": "order.created", "data": {"id": 1}})
    assert status == 202 and event["specversion"] == "1.0"
    structured = {"specversion": "1.0", "id": "s-1", "source": "shop", "type": "order.paid", "data": {"id": 2}}
    status, _ = await _call(jp_fetch, "POST", "events", raw=json.dumps(structured),
                            headers={"Content-Type": "application/cloudevents+json"})
    assert status == 202
    status, _ = await _call(jp_fetch, "POST", "events", raw=json.dumps({"id": 3}),
                            headers={"Content-Type": "application/json", "ce-specversion": "1.0",
                                     "ce-id": "b-1", "ce-source": "shop", "ce-type": "order.shipped"})
    assert status == 202
    runs = await _runs(core, "on_order", 3)
    assert sorted(r.event["type"] for r in runs) == ["order.created", "order.paid", "order.shipped"]
    assert sorted(r.input["id"] for r in runs) == [1, 2, 3]

    status, _ = await _call(jp_fetch, "POST", "events", raw="{bad",
                            headers={"Content-Type": "application/cloudevents+json"})
    assert status == 400
    assert (await _call(jp_fetch, "DELETE", "subscriptions", "orders"))[0] == 204
    assert (await _call(jp_fetch, "GET", "subscriptions", "orders"))[0] == 404


async def test_webhook_source_endpoint(jp_fetch, jp_serverapp, http_server_client, jp_base_url):
    core = jp_serverapp.web_app.settings["dispatch_kernel"].core
    await asyncio.get_running_loop().run_in_executor(None, lambda: core.functions.deploy(handle, name="on_hook", org="default"))
    await _call(jp_fetch, "POST", "subscriptions", body={"function": "on_hook", "event_type": "git.*"})
    status, source = await _call(jp_fetch, "POST", "event-sources",
                                 body={"name": "hook", "type": "webhook", "config": {"event_type": "git.push"}})
    assert status == 201 and source["url"].endswith("dispatch/v1/webhooks/hook")
    token = source["config"]["token"]
    status, shown = await _call(jp_fetch, "GET", "event-sources", "hook")
    assert "token" not in shown["config"] and "token_sha256" not in shown["config"]

    url = f"{jp_base_url.rstrip('/')}/dispatch/v1/webhooks/hook"

    async def post(headers, body):
        response = await http_server_client.fetch(url, method="POST", body=body, headers=headers,
                                                  raise_error=False)
        problems = response_problems("POST", "webhooks/hook", response.code,
                                     response.headers.get("Content-Type", ""), response.body or b"")
        assert not problems, problems
        return response.code

    # no Jupyter login, no token: refused; a wrong token: refused
    assert await post({"Content-Type": "application/json"}, b'{"ref": "main"}') == 401
    assert await post({"Authorization": "Bearer nope-nope-nope-nope"}, b'{"ref": "main"}') == 401
    # the token, a malformed body: 400 and nothing emitted
    assert await post({"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, b"{x") == 400
    assert await post({"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                      b'{"ref": "main"}') == 202
    await asyncio.sleep(0.3)
    runs = await _runs(core, "on_hook", 1)
    assert len(runs) == 1 and runs[0].input == {"ref": "main"} and runs[0].event["type"] == "git.push"
    assert (await _call(jp_fetch, "DELETE", "event-sources", "hook"))[0] == 204
    # a webhook that is gone is refused as one that never was: 401, as a wrong token is
    assert await post({"Authorization": f"Bearer {token}"}, b'{"ref": "main"}') == 401


async def test_bodies_are_checked_against_the_spec(jp_fetch):
    """A body of the wrong shape is a 400 naming the field (openapi.yaml's schemas), and creates nothing."""
    for path, body, field in [
        ("subscriptions", {"function": "f", "event_type": "a.b", "extra": 1}, "extra"),
        ("subscriptions", {"function": "f", "event_type": "a.b", "filters": {"source": 1}}, "filters"),
        ("subscriptions", {"function": "f", "event_type": "a.b", "max_attempts": 0}, "max_attempts"),
        ("subscriptions", {"function": "bad name", "event_type": "a.b"}, "bad name"),
        ("event-sources", {"name": "s", "type": "schedule", "config": []}, "config"),
        ("event-sources", {"name": "s", "type": "webhook", "secrets": "one"}, "secrets"),
        ("events", {"type": "a.b", "unknown": True}, "unknown"),
        ("events", {"data": 1}, "type"),
    ]:
        status, error = await _call(jp_fetch, "POST", path, body=body)
        assert status == 400 and field in error["message"], (path, body, error)
    assert (await _call(jp_fetch, "POST", "events", raw=b"[1]"))[0] == 400
    assert (await _call(jp_fetch, "GET", "subscriptions"))[1] == {"items": []}
    assert (await _call(jp_fetch, "GET", "event-sources"))[1] == {"items": []}
    assert (await _call(jp_fetch, "GET", "event-sources", "nope"))[0] == 404
    assert (await _call(jp_fetch, "DELETE", "event-sources", "nope"))[0] == 404
    assert (await _call(jp_fetch, "DELETE", "subscriptions", "nope"))[0] == 404


async def test_webhook_names_cannot_be_enumerated(jp_fetch, jp_base_url, http_server_client, jp_serverapp):
    """An unknown webhook, a known one without (or with a wrong, or another webhook's) token,
    and an event source that is no webhook: the same 401, the same body but for the name asked."""
    status, hook = await _call(jp_fetch, "POST", "event-sources", body={"name": "hook", "type": "webhook"})
    assert status == 201
    status, other = await _call(jp_fetch, "POST", "event-sources", body={"name": "other", "type": "webhook"})
    assert status == 201
    status, _ = await _call(jp_fetch, "POST", "event-sources",
                            body={"name": "nightly", "type": "schedule", "config": {"cron": "0 2 * * *"}})
    assert status == 201

    async def post(name, headers):
        response = await http_server_client.fetch(f"{jp_base_url.rstrip('/')}/dispatch/v1/webhooks/{name}",
                                                  method="POST", body=b'{"ref": "main"}', raise_error=False,
                                                  headers={"Content-Type": "application/json", **headers})
        body = json.loads(response.body)
        # what differs is only the name the caller typed: nothing the caller did not already know
        return response.code, body["code"], body["message"].replace(repr(name), "NAME"), \
            response.headers.get("Content-Type"), response.headers.get("WWW-Authenticate")

    wrong = {"Authorization": "Bearer nope-nope-nope-nope"}
    misplaced = {"X-Dispatch-Token": other["config"]["token"]}
    answers = {(name, str(headers)): await post(name, headers)
               for name in ("hook", "ghost", "nightly", "x" * 60) for headers in ({}, wrong, misplaced)}
    assert len(set(answers.values())) == 1, answers
    [(code, _, message, _, _)] = set(answers.values())
    assert code == 401 and "token" in message
    core = jp_serverapp.web_app.settings["dispatch_kernel"].core
    assert core.runs.list_runs("default") == []  # none of them emitted anything
