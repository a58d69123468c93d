"""base-images and images: a real image built on the test registry's Python base, over REST.

The registry and the base image come from tests/containers_support.py (started by the tests
themselves); the server finds the registry through DISPATCH_REGISTRY, as a user's would.
"""

from __future__ import annotations

import json

import pytest

from tests.containers_support import python_base, registry  # noqa: F401  (fixtures)

# The first build of a session may debootstrap the Python base image (minutes, once per cache).
pytestmark = pytest.mark.timeout(600)

ESCAPE_SOURCE = '''
def escape(text):
    import markupsafe

    return [str(markupsafe.escape(text)), markupsafe.__version__]
'''


@pytest.fixture
def dispatch_config(request, monkeypatch):
    # Only the tests that build start the registry; the server reads DISPATCH_REGISTRY at start.
    if "python_base" in request.fixturenames:
        monkeypatch.setenv("DISPATCH_REGISTRY", request.getfixturevalue("registry").address)
    return {}


ENDPOINTS = [("GET", "base-images"), ("POST", "base-images"), ("GET", "base-images/b"), ("DELETE", "base-images/b"),
             ("GET", "images"), ("POST", "images"), ("GET", "images/i"), ("DELETE", "images/i")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_image_endpoint_refuses_the_unauthenticated(api, method, path):
    reply = await api(method, path, {} if method == "POST" else None, headers={"Authorization": "token not-the-token"})
    assert reply.status == 403 and "not authenticated" in reply.json["message"]


async def test_a_base_image_then_an_image_then_a_function_built_on_it(api, python_base, monkeypatch):
    # pytest-jupyter puts this process's sys.path (markupsafe 3 among it) in PYTHONPATH, which
    # local workers inherit: the function would import that markupsafe, not the image's.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    created = await api("POST", "base-images", {"name": "python311", "image_url": python_base, "language": "python3"})
    assert created.status == 201, created.json
    base = created.json
    assert base["status"] == "READY" and base["python"] == "3.11" and base["digest"].startswith("sha256:")
    assert created.headers["Location"].endswith("/dispatch/v1/base-images/python311")
    assert [b["name"] for b in (await api("GET", "base-images")).json["items"]] == ["python311"]
    assert (await api("GET", "base-images/python311")).json["image_url"] == python_base

    built = await api("POST", "images", {"name": "ms", "base_image": "python311",
                                         "requirements": ["markupsafe==2.1.5"], "tags": {"team": "data"}})
    assert built.status == 201, built.json
    image = built.json
    assert image["status"] == "READY" and image["reason"] == "" and image["tags"] == {"team": "data"}
    assert "/dispatch/images/default/ms@sha256:" in image["image_url"] and image["digest"].startswith("sha256:")
    assert image["requirements"] == ["markupsafe==2.1.5"] and image["base_image"] == "python311"
    assert [i["name"] for i in (await api("GET", "images")).json["items"]] == ["ms"]
    assert (await api("GET", "images/ms")).json["digest"] == image["digest"]
    taken = await api("POST", "images", {"name": "ms", "base_image": "python311"})
    assert taken.status == 409

    # deploy over REST accepts image: the function gets the image's requirements
    deployed = await api("POST", "functions", {"name": "escape", "source": {"code": ESCAPE_SOURCE}, "image": "ms"})
    assert deployed.status == 201, deployed.json
    assert deployed.json["image_name"] == "ms"
    run = await api("POST", "runs", {"function": "escape", "input": ["<b>"], "wait": True})
    assert run.json["status"] == "SUCCEEDED", run.json
    assert run.json["output"] == ["&lt;b&gt;", "2.1.5"]
    missing = await api("POST", "functions", {"name": "other", "source": {"code": ESCAPE_SOURCE}, "image": "nope"})
    assert missing.status == 404 and "nope" in missing.json["message"]

    assert (await api("DELETE", "images/ms")).status == 204
    assert (await api("GET", "images/ms")).status == 404
    assert (await api("DELETE", "images/ms")).status == 404
    assert (await api("DELETE", "base-images/python311")).status == 204
    assert (await api("GET", "base-images/python311")).status == 404
    assert (await api("GET", "base-images")).json == {"items": []}


async def test_a_streamed_build_that_fails_leaves_the_image_in_error(api, jp_fetch, python_base):
    assert (await api("POST", "base-images", {"name": "python311", "image_url": python_base})).status == 201
    response = await jp_fetch("dispatch", "v1", "images", method="POST", raise_error=False,
                              headers={"Accept": "application/x-ndjson"}, request_timeout=300,
                              body=json.dumps({"name": "broken", "base_image": "python311",
                                               "requirements": ["no-such-distribution-dk==1.0"]}))
    assert response.code == 200 and response.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.body.decode().splitlines() if line.strip()]
    logs = [line["log"] for line in lines if "log" in line]
    assert any("resolving wheels" in line and "no-such-distribution-dk==1.0" in line for line in logs), logs
    last = lines[-1]
    assert last["error"]["code"] == 422 and "resolving the requirements failed" in last["error"]["message"]
    assert last["image"]["status"] == "ERROR" and "no-such-distribution-dk" in last["image"]["reason"]
    stored = await api("GET", "images/broken")
    assert stored.json["status"] == "ERROR" and stored.json["reason"] == last["image"]["reason"]
    # without streaming, the same failure is a 422 with the image
    again = await api("POST", "images", {"name": "broken", "base_image": "python311",
                                         "requirements": ["no-such-distribution-dk==1.0"]})
    assert again.status == 422 and again.json["image"]["status"] == "ERROR"


async def test_base_images_and_images_are_checked(api, python_base, registry):
    # a reference whose manifest is not in its registry: created, in ERROR, with the reason
    gone = await api("POST", "base-images", {"name": "gone", "image_url": f"{registry.address}/dispatch/none:1"})
    assert gone.status == 201 and gone.json["status"] == "ERROR" and gone.json["reason"]
    on_gone = await api("POST", "images", {"name": "x", "base_image": "gone"})
    assert on_gone.status == 409 and "not ready" in on_gone.json["message"]
    assert (await api("POST", "images", {"name": "x", "base_image": "nope"})).status == 404
    assert (await api("POST", "base-images", {"name": "gone", "image_url": python_base})).status == 409
    assert (await api("POST", "base-images", {"name": "python311", "image_url": python_base})).status == 201
    bad_requirement = await api("POST", "images", {"name": "x", "base_image": "python311", "requirements": ["=="]})
    assert bad_requirement.status == 400 and "not a valid requirement" in bad_requirement.json["message"]
    assert (await api("GET", "images")).json == {"items": []}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("base-images", {"name": "b"}, "'image_url' is a required property"),
        ("base-images", {"name": "b", "image_url": "python:3.11"}, "python:3.11"),
        ("base-images", {"name": "b", "image_url": "127.0.0.1:1/p:1", "language": "ruby"}, "$.language"),
        ("base-images", {"name": "no spaces", "image_url": "127.0.0.1:1/p:1"}, "not a valid base image name"),
        ("images", {"name": "i"}, "'base_image' is a required property"),
        ("images", {"name": "i", "base_image": "b", "requirements": "markupsafe"}, "$.requirements"),
        ("images", {"name": "i", "base_image": "b", "extra": 1}, "extra"),
        ("images", [], "is not of type 'object'"),
    ],
)
async def test_malformed_image_requests_are_400(api, path, body, message):
    reply = await api("POST", path, body)
    assert reply.status == 400 and message in reply.json["message"], reply.json
    assert (await api("GET", path)).json == {"items": []}
