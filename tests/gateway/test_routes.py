"""The route table and the pieces of a request, without a server: templates, precedence,
405's methods, hostile paths, inputs and the answers runs become."""

from __future__ import annotations

import pytest

import dispatch_kernel as dk
from dispatch_kernel.gateway.requests import GatewayError, segments
from dispatch_kernel.gateway.responses import run_reply
from dispatch_kernel.gateway.routes import RouteTable, api_urls, parse_route, parse_template


def _api(name: str, paths: list[str], methods: list[str] | None = None, **fields) -> dk.Api:
    return dk.Api(name=name, function=name, paths=paths, methods=methods or ["GET"], **fields)


def test_literal_segments_win_over_parameters_whatever_the_order():
    table = RouteTable([_api("by-id", ["/users/{id}"]), _api("me", ["/users/me"]), _api("root", ["/"])])
    assert table.match("GET", ["users", "me"]).api.name == "me"
    found = table.match("GET", ["users", "42"])
    assert (found.api.name, found.params, found.template) == ("by-id", {"id": "42"}, "/users/{id}")
    assert table.match("GET", []).api.name == "root"
    assert table.match("GET", ["users"]) is None and table.match("GET", ["users", "1", "x"]) is None


def test_a_path_with_other_methods_lists_them_all():
    table = RouteTable([_api("a", ["/x/{id}"], ["GET", "POST"]), _api("b", ["/x/y"], ["DELETE"])])
    assert table.match("PUT", ["x", "y"]).allowed == ["GET", "POST", "DELETE"]
    assert table.match("POST", ["x", "y"]).api.name == "a"  # the parameter route takes what the literal lacks


def test_disabled_apis_and_other_hosts_are_not_routed():
    table = RouteTable([_api("off", ["/x"], enabled=False), _api("hosted", ["/x"], hosts=["a.test"])])
    assert table.match("GET", ["x"]) is None
    assert table.match("GET", ["x"], "a.test").api.name == "hosted" and table.hosts == {"a.test"}


@pytest.mark.parametrize(("raw", "expected"), [
    ("a/b%2Fc", ["a", "b/c"]), ("", []), ("/", []), ("a/%C3%A9", ["a", "é"]), ("a/", ["a"]),
])
def test_request_paths_are_split_then_decoded(raw, expected):
    assert segments(raw) == expected


@pytest.mark.parametrize("raw", ["a/..", "%2e%2e/a", "a/%00", "a/%ff", "x" * 5000])
def test_hostile_request_paths_are_refused(raw):
    with pytest.raises(GatewayError) as caught:
        segments(raw)
    assert caught.value.status == 400


def test_routes_and_templates_as_people_type_them():
    assert parse_route("GET,post /hello/{name}") == (["GET", "POST"], "/hello/{name}")
    assert parse_route("/hi") == (["GET"], "/hi")
    assert parse_template("/a/{b}/c").shape == ("a", None, "c")
    with pytest.raises(dk.InvalidRequestError):
        parse_route("GET /a /b")


def test_urls_under_a_gateway_root():
    api = _api("a", ["/hello/{name}"])
    assert api_urls(api, "http://h:8888/base/dispatch/http/") == ["http://h:8888/base/dispatch/http/default/hello/{name}"]
    hosted = _api("b", ["/x"], hosts=["api.test"])
    assert api_urls(hosted, "http://h:8888/dispatch/http/") == ["http://api.test:8888/dispatch/http/x"]


def test_run_outcomes_become_statuses():
    ok = dk.Run(function="f", status=dk.RunStatus.SUCCEEDED, output={"a": float("nan")})
    reply = run_reply(ok)
    assert reply.status == 200 and b"NaN" not in reply.body  # strict JSON, as REST answers
    assert ("X-Dispatch-Run", ok.id) in reply.headers
    timed_out = dk.Run(function="f").fail(dk.ErrorType.SYSTEM, "the run timed out after 1s and its worker was killed")
    assert run_reply(timed_out).status == 504
    crashed = dk.Run(function="f").fail(dk.ErrorType.SYSTEM, "its worker was killed by SIGSEGV")
    assert run_reply(crashed).status == 500 and b"SIGSEGV" not in run_reply(crashed).body
    shaped = dk.Run(function="f", status=dk.RunStatus.SUCCEEDED,
                    output=dk.Response({"ok": True}, 201, {"Content-Length": "9", "X-A": "b"}))
    reply = run_reply(shaped)
    assert reply.status == 201 and reply.body == b'{"ok":true}'
    assert ("X-A", "b") in reply.headers and not [h for h in reply.headers if h[0] == "Content-Length"]
    bad_header = dk.Run(function="f", status=dk.RunStatus.SUCCEEDED,
                        output=dk.Response("x", headers={"X-A": "b\r\nSet-Cookie: y"}))
    assert run_reply(bad_header).status == 500
