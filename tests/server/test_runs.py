"""runs, runs/{id}, runs/{id}/cancel and the runs/stream event stream."""

import asyncio
import time
import json

import pytest

from .api import ADD_SOURCE, HANDLE_SOURCE, NAME_SCHEMA
from .conftest import store_params

NAP_SOURCE = "def nap(seconds):\n    import time\n    time.sleep(seconds)\n    return seconds\n"


@pytest.fixture(params=["sqlite", "postgres"])
def dispatch_store(request):
    """Every test here runs on both stores."""
    return store_params(request)


@pytest.fixture
def dispatch_config():
    return {"run_threads": 1}  # one non-blocking run at a time: the next ones stay QUEUED


async def deploy(api, code=ADD_SOURCE, **fields):
    reply = await api("POST", "functions", {"source": {"code": code}, **fields})
    assert reply.status == 201, reply.json
    return reply.json


async def test_post_with_wait_answers_200_with_the_finished_run(api):
    await deploy(api)
    reply = await api("POST", "runs", {"function": "add", "input": {"x": 1, "y": 2}, "wait": True})
    assert reply.status == 200
    run = reply.json
    assert run["status"] == "SUCCEEDED" and run["output"] == 3 and run["input"] == {"x": 1, "y": 2}
    assert run["times"]["queued"] <= run["times"]["started"] <= run["times"]["finished"]
    assert (await api("GET", f"runs/{run['id']}")).json == run


async def test_a_failing_function_is_still_200_with_the_failed_run(api):
    await deploy(api)
    reply = await api("POST", "runs", {"function": "add", "input": [1, "a"], "wait": True})
    assert reply.status == 200
    assert reply.json["status"] == "FAILED" and reply.json["error"]["type"] == "FunctionError"
    assert "TypeError" in reply.json["error"]["message"]


async def test_many_waiting_posts_at_once_each_get_their_own_run(api):
    # More than the workers can take at once: they queue and share trips to the workers.
    await deploy(api, HANDLE_SOURCE, schema={"in": NAME_SCHEMA}, scaling={"max_workers": 2})
    names = [f"n{i}" for i in range(60)]
    bodies = [{"function": "handle", "input": {"name": name}, "wait": True} for name in names]
    bodies[7]["input"] = {"name": 7}  # refused by the schema, amid the others
    replies = await asyncio.gather(*[api("POST", "runs", body) for body in bodies])
    assert replies[7].status == 422 and replies[7].json["error"]["type"] == "InputError"
    for index, (name, reply) in enumerate(zip(names, replies)):
        if index != 7:
            assert reply.status == 200 and reply.json["output"] == {"hello": name}, reply.json
    assert len({reply.json["id"] for reply in replies}) == 60
    listed = (await api("GET", "runs", params={"function": "handle", "limit": 100})).json["items"]
    assert sorted(run["id"] for run in listed) == sorted(reply.json["id"] for reply in replies)


async def test_values_json_cannot_carry_are_described_in_strict_json(api):
    source = "def odd(kind):\n    return {'nan': float('nan'), 'inf': [float('inf')], 'kind': kind}\n"
    await deploy(api, source)
    reply = await api("POST", "runs", {"function": "odd", "input": ["x"], "wait": True})  # parsed strictly
    assert reply.status == 200 and reply.json["status"] == "SUCCEEDED"
    assert reply.json["output"] == {"nan": {"$python": "builtins.float", "repr": "nan"},
                                    "inf": [{"$python": "builtins.float", "repr": "inf"}], "kind": "x"}


async def test_post_without_wait_answers_202_with_the_queued_run(api):
    await deploy(api, NAP_SOURCE)
    reply = await api("POST", "runs", {"function": "nap", "input": [0.2]})
    assert reply.status == 202 and reply.json["status"] in ("QUEUED", "RUNNING")
    finished = await api("GET", f"runs/{reply.json['id']}", params={"wait": 30})
    assert finished.json["status"] == "SUCCEEDED" and finished.json["output"] == 0.2


async def test_input_that_fails_the_schema_is_422_with_the_failed_run(api):
    await deploy(api, HANDLE_SOURCE, schema={"in": NAME_SCHEMA})
    for wait in (True, False):
        reply = await api("POST", "runs", {"function": "handle", "input": {"name": 5}, "wait": wait})
        assert reply.status == 422
        assert reply.json["status"] == "FAILED" and reply.json["error"]["type"] == "InputError"
        assert "$.name" in reply.json["error"]["message"]


@pytest.mark.parametrize("dispatch_store", ["sqlite"], indirect=True)  # refused before the store
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ('{"function": "add", "input": [1, 2]', 400, "not valid JSON"),
        ('{"input": [1, 2]}', 400, "'function' is a required property"),
        ('{"function": "add", "wait": "yes"}', 400, "$.wait"),
        ('{"function": "add", "input": [1], "args": [1]}', 400, "not both"),
        ('{"function": "add", "args": {"x": 1}}', 400, "$.args"),
        ('{"function": "ghost", "input": []}', 404, "no function named 'ghost'"),
    ],
)
async def test_bad_run_requests(api, body, status, message):
    await deploy(api)
    reply = await api("POST", "runs", raw=body)
    assert reply.status == status and message in reply.json["message"]


async def test_list_filters_and_cursor_pagination(api):
    await deploy(api)
    ids = []
    for i in range(5):
        ids.append((await api("POST", "runs", {"function": "add", "input": [i, "x" if i == 2 else 0],
                                                "wait": True})).json["id"])
    first = (await api("GET", "runs", params={"function": "add", "limit": 2})).json
    assert [r["id"] for r in first["items"]] == ids[:-3:-1] and first["next"] == ids[3]
    second = (await api("GET", "runs", params={"limit": 2, "before": first["next"]})).json
    assert [r["id"] for r in second["items"]] == [ids[2], ids[1]]
    last = (await api("GET", "runs", params={"limit": 2, "before": second["next"]})).json
    assert [r["id"] for r in last["items"]] == [ids[0]] and last["next"] is None
    failed = (await api("GET", "runs", params={"status": "FAILED"})).json["items"]
    assert [r["id"] for r in failed] == [ids[2]]
    since = (await api("GET", "runs", params={"since": failed[0]["times"]["queued"]})).json["items"]
    assert [r["id"] for r in since] == ids[:1:-1]
    assert (await api("GET", "runs", params={"function": "other"})).json == {"items": [], "next": None}


@pytest.mark.parametrize("dispatch_store", ["sqlite"], indirect=True)  # refused before the store
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": 1001}, "limit must be between"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"since": "yesterday"}, "since must be a number"),
        ({"since": "nan"}, "finite"),
        ({"status": "SLEEPING"}, "unknown run status"),
    ],
)
async def test_bad_list_parameters_are_400(api, params, message):
    reply = await api("GET", "runs", params=params)
    assert reply.status == 400 and message in reply.json["message"]


async def test_unknown_run_is_404(api):
    for path in ("runs/0000", "runs/0000/cancel"):
        reply = await api("POST" if path.endswith("cancel") else "GET", path)
        assert reply.status == 404 and "no run with id '0000'" in reply.json["message"]
    assert (await api("GET", "runs/0000", params={"wait": 1})).status == 404
    assert (await api("GET", "runs/0000", params={"wait": 61})).status == 400


async def test_cancel_a_queued_or_running_run_and_not_a_finished_one(api):
    await deploy(api, NAP_SOURCE)
    await api("POST", "runs", {"function": "nap", "input": [0], "wait": True})  # a warm worker
    running = (await api("POST", "runs", {"function": "nap", "input": [30]})).json
    for _ in range(500):
        if (await api("GET", f"runs/{running['id']}")).json["status"] == "RUNNING":
            break
        await asyncio.sleep(0.01)
    queued = (await api("POST", "runs", {"function": "nap", "input": [0]})).json
    assert queued["status"] == "QUEUED"
    cancelled = await api("POST", f"runs/{queued['id']}/cancel")
    assert cancelled.status == 200 and cancelled.json["status"] == "CANCELLED"
    again = await api("POST", f"runs/{queued['id']}/cancel")
    assert again.status == 409 and "already finished (CANCELLED)" in again.json["message"]
    started = time.monotonic()
    stopped = await api("POST", f"runs/{running['id']}/cancel")
    assert stopped.status == 200 and stopped.json["status"] == "CANCELLED"
    assert "cancelled while it ran" in stopped.json["error"]["message"]
    assert time.monotonic() - started < 10  # not the 30 s the run would have taken
    assert (await api("GET", f"runs/{running['id']}")).json["status"] == "CANCELLED"
    assert (await api("GET", f"runs/{queued['id']}")).json["status"] == "CANCELLED"
    after = await api("POST", "runs", {"function": "nap", "input": [0], "wait": True})
    assert after.json["status"] == "SUCCEEDED"  # on a new worker


async def test_the_stream_sends_every_status_change(api, jp_http_port, jp_base_url, jp_serverapp):
    await deploy(api)
    token = jp_serverapp.identity_provider.token
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write((f"GET {jp_base_url}dispatch/v1/runs/stream?function=add HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: token {token}\r\nAccept: text/event-stream\r\n\r\n").encode())
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    assert head.startswith("HTTP/1.1 200") and "text/event-stream" in head
    text = ""
    while ": watching runs" not in text:
        text += (await asyncio.wait_for(reader.read(4096), 10)).decode()
    run = (await api("POST", "runs", {"function": "add", "input": [1, 2], "wait": True})).json
    events = []
    while len(events) < 3:
        text += (await asyncio.wait_for(reader.read(65536), 10)).decode()
        events = [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]
    writer.close()
    assert [(e["id"], e["status"]) for e in events] == [(run["id"], s) for s in ("QUEUED", "RUNNING", "SUCCEEDED")]
    assert events[-1]["output"] == 3
    hub = jp_serverapp.web_app.settings["dispatch_kernel"].hub
    for _ in range(100):  # the server notices the closed connection and stops watching
        if not hub._streams:
            break
        await asyncio.sleep(0.02)
    assert not hub._streams


async def test_the_stream_needs_authentication(jp_fetch):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("dispatch", "v1", "runs", "stream", headers={"Authorization": "token wrong"})
    assert caught.value.code == 403
