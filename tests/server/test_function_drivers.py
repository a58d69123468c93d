"""Several drivers for one function over REST: the drivers field on create, each driver's
state in the function's body, a run pinned to a driver and the driver in every run's body."""

import pytest

from .api import ADD_SOURCE

# The container driver pointed at an engine that does not exist: a real deploy failure.
BROKEN = {"container": {"docker_host": "unix:///nonexistent/dispatch-test.sock"}}


@pytest.fixture
def dispatch_config():
    return {"plugin_options": BROKEN}


async def test_a_failover_function_over_rest(api):
    body = {"name": "add", "source": {"code": ADD_SOURCE}, "drivers": ["container", "local"]}
    reply = await api("POST", "functions", body)
    assert reply.status == 201, reply.json
    assert reply.json["drivers"] == ["container", "local"] and reply.json["status"] == "READY"
    assert reply.json["driver_status"]["local"]["status"] == "READY"
    assert reply.json["driver_status"]["container"]["status"] == "ERROR"
    assert reply.json["driver_status"]["container"]["reason"]
    run = await api("POST", "runs", {"function": "add", "input": [1, 2], "wait": True})
    assert run.status == 200 and run.json["output"] == 3 and run.json["driver"] == "local"
    pinned = await api("POST", "runs", {"function": "add", "args": [2, 2], "driver": "local"})
    assert pinned.status == 202 and pinned.json["driver"] == "local"
    stored = await api("GET", f"runs/{pinned.json['id']}", params={"wait": 10})
    assert stored.json["driver"] == "local" and stored.json["output"] == 4
    down = await api("POST", "runs", {"function": "add", "args": [2, 2], "driver": "container"})
    assert down.status == 409 and "not ready" in down.json["message"]
    unknown = await api("POST", "runs", {"function": "add", "args": [2, 2], "driver": "elsewhere", "wait": True})
    assert unknown.status == 400 and "not one of the drivers" in unknown.json["message"]


async def test_a_split_over_rest_and_bad_drivers(api):
    body = {"name": "add", "source": {"code": ADD_SOURCE}, "drivers": {"local": 0.9, "container": 0.1}}
    reply = await api("POST", "functions", body)
    assert reply.status == 201 and reply.json["drivers"] == {"local": 0.9, "container": 0.1}
    for bad, words in [({"local": -1}, "drivers"), ([], "drivers"), ("local", "drivers"),
                       ({"local": 1, "nope": 1}, "unknown driver 'nope'")]:
        reply = await api("POST", "functions", {"name": "bad", "source": {"code": ADD_SOURCE}, "drivers": bad})
        assert reply.status == 400 and words in reply.json["message"], (bad, reply.json)
    assert (await api("GET", "functions/bad")).status == 404
