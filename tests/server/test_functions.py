"""functions and functions/{name}: create from source text or a package, get, list, update
with a revision, delete, and every way a request can be wrong."""

import pytest

from dispatch_kernel.packaging import package

from .api import ADD_SOURCE, HANDLE_SOURCE, add
from .conftest import store_params


@pytest.fixture(params=["sqlite", "postgres"])
def dispatch_store(request):
    """Every test here runs on both stores."""
    return store_params(request)


async def test_create_from_source_text_then_get_list_and_run(api):
    reply = await api("POST", "functions", {"name": "add", "source": {"code": ADD_SOURCE, "handler": "add"}})
    assert reply.status == 201
    assert reply.json["name"] == "add" and reply.json["status"] == "READY" and "source" not in reply.json
    assert reply.headers["Location"].endswith("/a%40b/dispatch/v1/functions/add")
    assert (await api("GET", "functions/add")).json["handler"] == "add"
    assert [f["name"] for f in (await api("GET", "functions")).json["items"]] == ["add"]
    run = await api("POST", "runs", {"function": "add", "input": [1, 2], "wait": True})
    assert run.status == 200 and run.json["output"] == 3


async def test_the_handler_defaults_to_handle_and_the_name_to_the_handler(api):
    reply = await api("POST", "functions", {"source": {"code": HANDLE_SOURCE}, "timeout": "5s"})
    assert reply.status == 201
    assert reply.json["name"] == "handle" and reply.json["convention"] == "dispatch"
    assert reply.json["timeout"] == 5.0
    run = await api("POST", "runs", {"function": "handle", "input": {"name": "Ada"}, "wait": True})
    assert run.json["output"] == {"hello": "Ada"}


async def test_create_from_a_package_built_by_the_python_client(api):
    body = {"name": "plus", "source": package(add).encode(), "scaling": {"max_workers": 1},
            "tags": {"team": "data"}}
    reply = await api("POST", "functions", body)
    assert reply.status == 201
    assert reply.json["scaling"]["max_workers"] == 1 and reply.json["tags"] == {"team": "data"}
    run = await api("POST", "runs", {"function": "plus", "args": [2, 3], "wait": True})
    assert run.json["output"] == 5


async def test_a_taken_name_is_a_conflict(api):
    body = {"name": "add", "source": {"code": ADD_SOURCE}}
    assert (await api("POST", "functions", body)).status == 201
    reply = await api("POST", "functions", body)
    assert reply.status == 409 and "already exists" in reply.json["message"]


async def test_update_needs_the_current_revision(api):
    created = (await api("POST", "functions", {"name": "add", "source": {"code": ADD_SOURCE}})).json
    changed = "def add(x, y):\n    return x + y + 100\n"
    update = {"source": {"code": changed}, "revision": created["revision"], "timeout": 10}
    reply = await api("PUT", "functions/add", update)
    assert reply.status == 200 and reply.json["revision"] > created["revision"]
    assert reply.json["timeout"] == 10
    run = await api("POST", "runs", {"function": "add", "input": [1, 2], "wait": True})
    assert run.json["output"] == 103
    stale = await api("PUT", "functions/add", update)
    assert stale.status == 409 and "has changed" in stale.json["message"]
    # Without a source the code stays; the other fields are as given.
    kept = await api("PUT", "functions/add", {"revision": reply.json["revision"]})
    assert kept.status == 200 and kept.json["timeout"] is None
    assert (await api("POST", "runs", {"function": "add", "input": [1, 2], "wait": True})).json["output"] == 103


async def test_update_errors(api):
    await api("POST", "functions", {"name": "add", "source": {"code": ADD_SOURCE}})
    assert (await api("PUT", "functions/ghost", {"revision": 1})).status == 404
    assert (await api("PUT", "functions/add", {"source": {"code": ADD_SOURCE}})).status == 400  # no revision
    renamed = await api("PUT", "functions/add", {"name": "other", "revision": 3})
    assert renamed.status == 400 and "rename" in renamed.json["message"]


async def test_delete(api):
    await api("POST", "functions", {"name": "add", "source": {"code": ADD_SOURCE}})
    reply = await api("DELETE", "functions/add")
    assert reply.status == 204 and reply.body == b""
    assert (await api("GET", "functions/add")).status == 404
    assert (await api("DELETE", "functions/add")).status == 404
    assert (await api("GET", "functions")).json == {"items": []}


@pytest.mark.parametrize("dispatch_store", ["sqlite"], indirect=True)  # refused before the store
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "needs a JSON body"),
        ("[1, 2]", "is not of type 'object'"),
        ('{"name": "x"}', "'source' is a required property"),
        ('{"name": 5, "source": {"code": "def f(): pass"}}', "$.name"),
        ('{"source": {"code": "def f(: pass"}}', "SyntaxError"),
        ('{"source": {"code": "import no_such_module_xyz\\ndef f(): pass"}}', "No module named"),
        ('{"source": {"code": "raise RuntimeError(42)\\ndef f(): pass"}}', "running the code failed: RuntimeError: 42"),
        ('{"source": {"code": "x = 1"}}', "name the handler"),
        ('{"source": {"code": "x = 1", "handler": "x"}}', "not a function"),
        ('{"source": {"code": "def f(): pass", "handler": "g"}}', "defines no 'g'"),
        ('{"source": "bm90IGEgcGFja2FnZQ=="}', "not a function package"),
        ('{"source": {"code": "def f(): pass"}, "colour": "red"}', "colour"),
        ('{"source": {"code": "def f(): pass"}, "timeout": "soon"}', "not a duration"),
        ('{"source": {"code": "def f(): pass"}, "timeout": -1}', "$.timeout"),
        ('{"source": {"code": "def f(): pass"}, "schema": {"in": {"type": "nope"}}}', "not a valid JSON Schema"),
        ('{"source": {"code": "def f(): pass"}, "driver": "nope"}', "unknown driver 'nope'"),
        ('{"source": {"code": "def f(): pass"}, "scaling": {"min_workers": 3, "max_workers": 2}}', "min_workers"),
        ('{"name": "<lambda>", "source": {"code": "def f(): pass"}}', "not a valid function name"),
        ('{"source": {"code": "def f(): pass"}, "requirements": ["not a requirement!"]}', "not a valid requirement"),
    ],
)
async def test_malformed_creates_are_400_and_create_nothing(api, body, message):
    reply = await api("POST", "functions", raw=body)
    assert reply.status == 400, reply.json
    assert message in reply.json["message"]
    assert (await api("GET", "functions")).json == {"items": []}


async def test_a_missing_secret_is_not_found(api):
    reply = await api("POST", "functions", {"source": {"code": ADD_SOURCE}, "secrets": ["nope"]})
    assert reply.status == 404 and "no secret named 'nope'" in reply.json["message"]


async def test_a_failed_deploy_is_422_with_the_function_in_error(api, monkeypatch):
    monkeypatch.setenv("UV_OFFLINE", "1")  # the environment build fails here, without asking a registry
    body = {"name": "needy", "source": {"code": ADD_SOURCE}, "requirements": ["no-such-distribution-xyz==0.0.1"]}
    reply = await api("POST", "functions", body)
    assert reply.status == 422
    assert reply.json["function"]["status"] == "ERROR" and "no-such-distribution-xyz" in reply.json["message"]
    assert (await api("GET", "functions/needy")).json["status"] == "ERROR"
    run = await api("POST", "runs", {"function": "needy", "input": [1, 2]})
    assert run.status == 409 and "not ready" in run.json["message"]


async def test_unknown_function_is_404(api):
    for method in ("GET", "DELETE"):
        reply = await api(method, "functions/ghost")
        assert reply.status == 404 and reply.json["message"] == "no function named 'ghost'"


async def test_an_oversized_body_is_413(api):
    code = "def big():\n    return 1\n" + "#" * (6 * 1024 * 1024) + "\n"
    reply = await api("POST", "functions", {"source": {"code": code}})
    assert reply.status == 413 and "over the limit" in reply.json["message"]
    assert (await api("GET", "functions")).json == {"items": []}
