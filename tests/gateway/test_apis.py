"""APIs from Python over both clients (embedded and REST): create, get, list, update, delete;
conflicting routes and bad fields are refused and change nothing."""

from __future__ import annotations

import pytest

import dispatch_kernel as dk
from tests.server.live import connected


@pytest.fixture(params=["local", "rest"])
def client(request, home, tmp_path):
    with connected(request.param, home, tmp_path / "server") as the_client:
        yield the_client


def test_an_api_is_created_read_listed_updated_and_deleted(client):
    api = client.create_api("hello-api", "hello", methods=["get", "POST"], paths=["/hello/{name}"], cors=True,
                            auth="public", tags={"team": "web"})
    assert isinstance(api, dk.Api)
    assert (api.name, api.function, api.methods, api.paths, api.cors, api.auth, api.enabled, api.revision) == (
        "hello-api", "hello", ["GET", "POST"], ["/hello/{name}"], True, "public", True, 1)
    assert api.protocols == ["http", "https"] and api.hosts == [] and api.tags == {"team": "web"}
    assert client.get_api("hello-api") == api
    client.create_api("other", "hi", paths=["/hi"])
    assert [a.name for a in client.list_apis()] == ["hello-api", "other"]
    assert [a.name for a in client.list_apis(function="hi")] == ["other"]

    changed = client.update_api("hello-api", paths=["/greet/{name}"], cors={"origins": ["http://a.test:8000"]})
    assert changed.paths == ["/greet/{name}"] and changed.methods == ["GET", "POST"] and changed.revision == 2
    assert changed.cors == {"origins": ["http://a.test:8000"], "headers": None, "max_age": 600}
    with pytest.raises(dk.ConflictError):
        client.update_api("hello-api", revision=1, enabled=False)  # stale
    assert client.get_api("hello-api").enabled is True

    client.delete_api("hello-api")
    with pytest.raises(dk.NotFoundError):
        client.get_api("hello-api")
    with pytest.raises(dk.NotFoundError):
        client.delete_api("hello-api")


def test_the_urls_of_an_api(client):
    api = client.create_api("hello-api", "hello", paths=["/hello/{name}"])
    urls = client.api_urls(api)
    if isinstance(client, dk.HttpClient):
        assert urls == [f"{client.url}dispatch/http/default/hello/{{name}}"]
    else:
        assert urls == ["/default/hello/{name}"]


def test_routes_that_another_enabled_api_claims_conflict(client):
    client.create_api("first", "hello", methods=["GET", "POST"], paths=["/hello/{name}"])
    with pytest.raises(dk.ConflictError, match="first"):
        client.create_api("second", "other", methods=["POST"], paths=["/hello/{who}"])  # the same shape
    with pytest.raises(dk.ConflictError):
        client.create_api("first", "other", paths=["/elsewhere"])  # a taken name
    client.create_api("third", "other", methods=["PUT"], paths=["/hello/{who}"])  # another method
    client.create_api("fourth", "other", paths=["/hello/me"])  # a literal beside a parameter
    client.create_api("hosted", "other", paths=["/hello/{name}"], hosts=["api.example.test"])  # another host
    client.create_api("idle", "other", paths=["/hello/{name}"], enabled=False)
    with pytest.raises(dk.ConflictError):
        client.update_api("idle", enabled=True)
    assert client.get_api("idle").enabled is False
    assert sorted(a.name for a in client.list_apis()) == ["first", "fourth", "hosted", "idle", "third"]


@pytest.mark.parametrize("path, words", [
    ("hello", "start"),
    ("/a/{b", "segment"),
    ("/a/x{b}", "segment"),
    ("/a/{b}/{b}", "twice"),
    ("/a//b", "empty"),
    ("/a/..", "'..'"),
])
def test_a_path_that_is_not_a_valid_template_conflicts_and_nothing_is_stored(client, path, words):
    with pytest.raises(dk.ConflictError, match=words):
        client.create_api("bad", "hello", paths=[path])
    client.create_api("good", "hello", paths=["/ok"])
    with pytest.raises(dk.ConflictError, match=words):
        client.update_api("good", paths=[path])
    assert [(a.name, a.paths, a.revision) for a in client.list_apis()] == [("good", ["/ok"], 1)]


@pytest.mark.parametrize(("fields", "words"), [
    ({"paths": []}, "at least one path"),
    ({"paths": ["/ok"], "methods": ["FETCH"]}, "method"),
    ({"paths": ["/ok"], "hosts": ["http://x.test"]}, "host"),
    ({"paths": ["/ok"], "protocols": ["ftp"]}, "protocols"),
    ({"paths": ["/ok"], "cors": {"origins": ["x.test"]}}, "origin"),
    ({"paths": ["/ok"], "cors": {"max_age": -1}}, "max_age"),
    ({"paths": ["/ok"], "auth": "basic"}, "auth"),
])
def test_bad_fields_are_refused_and_nothing_is_stored(client, fields, words):
    with pytest.raises(dk.InvalidRequestError, match=words):
        client.create_api("bad", "hello", **fields)
    assert client.list_apis() == []


def test_a_bad_name_or_function_is_refused(client):
    with pytest.raises(dk.InvalidRequestError):
        client.create_api("bad name", "hello", paths=["/x"])
    with pytest.raises(dk.InvalidRequestError):
        client.create_api("ok", "bad function", paths=["/x"])
    assert client.list_apis() == []
