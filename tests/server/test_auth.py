"""Authentication, authorization, XSRF, and the parts of the API that hold no entities."""

import json
import re
import urllib.parse
from http.cookies import SimpleCookie

import pytest
from openapi_spec_validator import validate as validate_spec

from dispatch_kernel.server import openapi

from .api import ADD_SOURCE, DenySecrets, response_problems


def _endpoints() -> list[tuple[str, str]]:
    """(method, path) of every operation in the spec, with a name for each path parameter."""
    endpoints = []
    for template, item in openapi.spec()["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                endpoints.append((method.upper(), re.sub(r"\{[^}]+\}", "x", template.strip("/"))))
    return endpoints


ENDPOINTS = _endpoints()
# Services elsewhere call these with a credential of their own instead of a Jupyter login.
OWN_CREDENTIAL = {("POST", "webhooks/x")}


@pytest.mark.parametrize(("method", "path"), [e for e in ENDPOINTS if e not in OWN_CREDENTIAL])
async def test_every_endpoint_refuses_the_unauthenticated(api, method, path):
    reply = await api(method, path, {} if method in ("POST", "PUT") else None,
                      headers={"Authorization": "token not-the-token"})
    assert reply.status == 403 and "not authenticated" in reply.json["message"]


@pytest.mark.parametrize(("method", "path"), sorted(OWN_CREDENTIAL))
async def test_an_endpoint_with_its_own_credential_refuses_without_it(api, method, path):
    reply = await api(method, path, {}, headers={"Authorization": "Bearer not-the-token"})
    assert reply.status == 401  # the same for a name that exists and one that does not


def test_the_endpoints_come_from_the_spec():
    assert ("POST", "webhooks/x") in ENDPOINTS and ("GET", "dead-letters") in ENDPOINTS
    assert len(ENDPOINTS) == sum(len([m for m in item if m in ("get", "post", "put", "delete")])
                                 for item in openapi.spec()["paths"].values())


@pytest.fixture
def jp_server_config(dispatch_home, request):
    from traitlets.config import Config

    config = {"ServerApp": {"jpserver_extensions": {"dispatch_kernel.server": True}},
              "DispatchApp": {"home": str(dispatch_home), "export_env": False}}
    if "deny" in request.node.name:
        config["ServerApp"]["authorizer_class"] = DenySecrets
    return Config(config)


async def test_an_authorizer_that_denies_a_resource_is_403_deny(api):
    reply = await api("GET", "secrets")
    assert reply.status == 403
    assert (await api("POST", "secrets", {"name": "s", "values": {}})).status == 403
    assert (await api("GET", "functions")).status == 200  # other resources stay allowed


async def test_there_are_no_images_until_one_is_made(api):
    assert (await api("GET", "images")).json == {"items": []}
    assert (await api("GET", "base-images")).json == {"items": []}


async def test_the_openapi_document_is_valid_and_served_under_the_base_url(api):
    reply = await api("GET", "openapi.json")
    doc = reply.json
    validate_spec(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "/a%40b/dispatch/v1"}]


async def test_unknown_paths_and_methods_answer_json(api, jp_fetch):
    reply = await jp_fetch("dispatch", "v1", "nothing", "here", raise_error=False)
    assert reply.code == 404 and "openapi.json" in json.loads(reply.body)["message"]
    assert (await api("PATCH", "functions/add", {})).status == 405


def test_the_response_checker_catches_what_breaks_the_spec():
    assert response_problems("GET", "functions", 200, "application/json", b'{"items": [{"name": 1}]}')
    assert response_problems("GET", "functions", 201, "application/json", b'{"items": []}')
    assert response_problems("GET", "functions", 200, "text/html", b"<html>")
    assert not response_problems("GET", "functions", 200, "application/json", b'{"items": []}')


# ------------------------------------------------------------------ a browser's cookie session


async def _login(http_server_client, base_url, token):
    """Log in as a browser does: the login form, its _xsrf cookie, the password field."""
    page = await http_server_client.fetch(base_url + "login", raise_error=False)
    cookies = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        cookies.load(header)
    xsrf = cookies["_xsrf"].value
    form = urllib.parse.urlencode({"_xsrf": xsrf, "password": token})
    login = await http_server_client.fetch(base_url + "login", method="POST", body=form,
                                           headers={"Cookie": f"_xsrf={xsrf}"}, follow_redirects=False,
                                           raise_error=False)
    assert login.code == 302, login.code
    for header in login.headers.get_list("Set-Cookie"):
        cookies.load(header)
    jar = "; ".join(f"{key}={morsel.value}" for key, morsel in cookies.items())
    return jar, xsrf


async def test_a_cookie_session_needs_the_xsrf_header_to_write(jp_serverapp, http_server_client, jp_base_url):
    jar, xsrf = await _login(http_server_client, jp_base_url, jp_serverapp.identity_provider.token)
    url = jp_base_url + "dispatch/v1/functions"
    body = json.dumps({"name": "add", "source": {"code": ADD_SOURCE}})
    read = await http_server_client.fetch(url, headers={"Cookie": jar}, raise_error=False)
    assert read.code == 200 and json.loads(read.body) == {"items": []}
    forged = await http_server_client.fetch(url, method="POST", body=body, headers={"Cookie": jar},
                                            raise_error=False)
    assert forged.code == 403 and json.loads(forged.body)["code"] == 403
    assert "_xsrf" in json.loads(forged.body)["message"]
    honest = await http_server_client.fetch(url, method="POST", body=body, raise_error=False,
                                            headers={"Cookie": jar, "X-XSRFToken": xsrf})
    assert honest.code == 201, honest.body
    assert not response_problems("POST", "functions", honest.code, honest.headers["Content-Type"], honest.body)
    anonymous = await http_server_client.fetch(url, method="POST", body=body, raise_error=False,
                                               headers={"X-XSRFToken": xsrf, "Cookie": f"_xsrf={xsrf}"})
    assert anonymous.code == 403
