"""Routes over real HTTP, the same tests against the Jupyter extension (`{base_url}dispatch/http/`)
and the standalone `dispatch gateway`: requests become inputs and ctx.http, runs become answers,
and every error a caller can cause is a 4xx with {"code", "message"}, never a 5xx."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from dispatch_kernel import NotFoundError

from .conftest import BODY_LIMIT, Deployment, Target


def _run_of(deployment: Deployment, answer) -> object:
    """The run record of an answer (the standalone gateway records it in its own journal: the
    server reads it once applied, a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return deployment.client.wait_run(answer.headers["X-Dispatch-Run"], 10)
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_a_get_route_runs_the_function_with_path_parameters(gateway: Target, deployment: Deployment):
    answer = gateway.request("GET", "default/hello/Ada", headers={"User-Agent": "curl/8.5"})
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json == {"greeting": "hello Ada", "agent": "curl/8.5"}
    run = _run_of(deployment, answer)
    assert run.function == "hello" and run.input == {"name": "Ada"} and str(run.status) == "SUCCEEDED"
    assert run.http["method"] == "GET" and run.http["route"] == "/hello/{name}" and run.http["api"] == "hello"


def test_query_and_parameters_make_the_input_of_get_and_delete(gateway: Target):
    got = gateway.request("GET", "default/echo/7?tag=a&tag=b&q=x%20y")
    assert got.json["payload"] == {"tag": ["a", "b"], "q": "x y", "id": "7"}
    assert got.json["http"]["query"] == {"tag": ["a", "b"], "q": "x y"}
    assert got.json["http"]["params"] == {"id": "7"} and got.json["http"]["path"] == "/echo/7"
    deleted = gateway.request("DELETE", "default/echo/7?force=1")
    assert deleted.json["payload"] == {"force": "1", "id": "7"}
    posted = gateway.request("POST", "default/echo/7?ignored=1", json.dumps({"a": 1}),
                             {"Content-Type": "application/json"})
    assert posted.json["payload"] == {"a": 1, "id": "7"}  # the body, with the path's parameters


def test_json_bodies_of_any_kind_are_the_input(gateway: Target):
    assert gateway.request("PUT", "default/echo", "[1, 2]", {"Content-Type": "application/json"}).json["payload"] == [1, 2]
    vendor = gateway.request("POST", "default/echo", '{"v": true}', {"Content-Type": "application/vnd.x+json"})
    assert vendor.json["payload"] == {"v": True}
    assert gateway.request("POST", "default/shout", '"hey"', {"Content-Type": "application/json"}).json == "HEY"


def test_forms_become_objects_and_files_carry_their_data(gateway: Target):
    form = gateway.request("POST", "default/echo", "name=Ada&lang=py&lang=go",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert form.json["payload"] == {"name": "Ada", "lang": ["py", "go"]}
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nnotes\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\x00\xffdata" + f"\r\n--{boundary}--\r\n".encode()
    multipart = gateway.request("POST", "default/echo", body,
                                {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert multipart.status == 200, multipart.body
    assert multipart.json["payload"] == {"title": "notes", "doc": {
        "filename": "a.bin", "content_type": "application/octet-stream", "size": 6,
        "data": base64.b64encode(b"\x00\xffdata").decode()}}


def test_text_is_a_string_and_other_types_are_refused(gateway: Target):
    assert gateway.request("POST", "default/shout", "héllo", {"Content-Type": "text/plain; charset=utf-8"}).json == "HÉLLO"
    refused = gateway.request("POST", "default/shout", b"\x89PNG", {"Content-Type": "image/png"})
    assert refused.status == 415 and refused.json["code"] == 415 and "image/png" in refused.json["message"]


@pytest.mark.parametrize(("body", "content_type"), [
    ("{not json", "application/json"),
    ("--x\r\nnot a part\r\n", "multipart/form-data; boundary=y"),
    (b"\xff\xfe", "text/plain; charset=utf-8"),
])
def test_malformed_bodies_are_400_and_run_nothing(gateway: Target, deployment: Deployment, body, content_type):
    """Counting runs before and after would race the standalone gateway's journal, which the server
    applies a moment later (runs of earlier tests arrive late); instead a good request follows the
    bad one through the same gateway, and once its run is recorded it must be the only run since."""
    since = time.time()
    answer = gateway.request("POST", "default/echo", body, {"Content-Type": content_type})
    assert answer.status == 400 and answer.json["code"] == 400 and answer.json["message"]
    marker = uuid.uuid4().hex
    good = gateway.request("POST", "default/echo", json.dumps({"marker": marker}), {"Content-Type": "application/json"})
    assert good.status == 200, good.body
    _run_of(deployment, good)
    recent = [run for run in deployment.client.list_runs(function="echo", limit=1000) if run.queued >= since]
    assert [run.input for run in recent] == [{"marker": marker}]


def test_a_body_over_the_limit_is_413(gateway: Target):
    answer = gateway.request("POST", "default/echo", b"x" * (BODY_LIMIT + 1), {"Content-Type": "text/plain"})
    assert answer.status == 413 and answer.json["code"] == 413


@pytest.mark.parametrize("path", [
    "default/hello/..", "default/%2e%2e/hello/x", "default/hello/a%00b", "default/" + "a" * 5000,
    "default/hello/%ff%fe", "../../etc/passwd", "default/hello/x/../../../y", "%00", "default//hello",
])
def test_hostile_paths_are_404_or_400_never_5xx(gateway: Target, path: str):
    answer = gateway.request("GET", path)
    assert answer.status in (400, 404), (path, answer.status, answer.body[:200])
    assert answer.json["code"] == answer.status


def test_a_unicode_path_is_just_a_parameter(gateway: Target):
    answer = gateway.request("GET", "default/hello/%C3%89tienne%20%E2%9C%93")
    assert answer.status == 200 and answer.json["greeting"] == "hello Étienne ✓"


def test_unknown_routes_wrong_methods_and_disabled_apis(gateway: Target):
    unknown = gateway.request("GET", "default/nowhere")
    assert unknown.status == 404 and unknown.json["code"] == 404
    assert gateway.request("GET", "other-org/hello/Ada").status == 404  # routes live in their org
    wrong = gateway.request("PATCH", "default/hello/Ada")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, POST"
    plain_options = gateway.request("OPTIONS", "default/hello/Ada")  # no preflight: just a method
    assert plain_options.status == 405 and plain_options.headers["Allow"] == "GET, POST"
    assert gateway.request("GET", "default/off/Ada").status == 404


def test_a_function_that_cannot_run_is_503(gateway: Target):
    missing = gateway.request("GET", "default/ghost")
    assert missing.status == 503 and missing.json["message"] == "function 'no-such-function' does not exist"
    broken = gateway.request("GET", "default/broken")
    assert broken.status == 503 and broken.json["message"] == "function 'broken' is not READY"
    assert b"no-such-distribution" not in broken.body  # the deploy's reason is not the public's to read


def test_run_failures_map_to_statuses_without_showing_code(gateway: Target, deployment: Deployment):
    refused = gateway.request("GET", "default/typed/abc")
    assert refused.status == 422 and refused.json["code"] == 422 and "does not match" in refused.json["message"]
    failed = gateway.request("GET", "default/fail")
    assert failed.status == 500 and failed.json["run"] == failed.headers["X-Dispatch-Run"]
    assert b"secret detail" not in failed.body and b"Traceback" not in failed.body and b"ValueError" not in failed.body
    run = _run_of(deployment, failed)
    assert run.error.type == "FunctionError" and "secret detail" in run.error.message  # recorded, not shown
    late = gateway.request("GET", "default/nap")
    assert late.status == 504 and late.json["run"] == late.headers["X-Dispatch-Run"]


@pytest.mark.parametrize(("kind", "status", "content_type", "body"), [
    ("redirect", 303, None, b""),
    ("html", 201, "text/html; charset=utf-8", b"<h1>hi</h1>"),
    ("bytes", 200, "application/octet-stream", b"\x00\x01binary"),
    ("dict", 418, "text/plain", b"teapot"),
])
def test_a_function_may_shape_its_response(gateway: Target, kind, status, content_type, body):
    answer = gateway.request("GET", f"default/shaped/{kind}")
    assert answer.status == status and answer.body == body
    if content_type:
        assert answer.headers["Content-Type"] == content_type
    if kind == "redirect":
        assert answer.headers["Location"] == "/elsewhere"
    if kind == "bytes":
        assert answer.headers["X-Kind"] == "bytes"


def test_a_response_that_is_not_valid_is_500(gateway: Target):
    answer = gateway.request("GET", "default/shaped/bad")
    assert answer.status == 500 and "not valid" in answer.json["message"]


def test_non_blocking_calls_answer_202_with_the_run(gateway: Target, deployment: Deployment):
    answer = gateway.request("GET", "default/hello/Bo", headers={"X-Dispatch-Blocking": "false"})
    assert answer.status == 202, answer.body
    run_id = answer.json["id"]
    assert answer.json["url"].endswith(f"/dispatch/v1/runs/{run_id}") and answer.headers["Location"] == answer.json["url"]
    assert _run_of(deployment, answer).output == {"greeting": "hello Bo", "agent": None}


def test_token_routes_take_the_servers_token_as_bearer(gateway: Target, deployment: Deployment):
    missing = gateway.request("GET", "default/private")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert gateway.request("GET", "default/private", headers={"Authorization": "Bearer wrong"}).status == 401
    assert gateway.request("GET", "default/private",
                           headers={"Authorization": f"token {deployment.token}"}).status == 401
    secret_cookie = f"session={uuid.uuid4().hex}"
    allowed = gateway.request("GET", "default/private", headers={"Authorization": f"Bearer {deployment.token}",
                                                                 "Cookie": secret_cookie})
    assert allowed.status == 200
    record = json.dumps(_run_of(deployment, allowed).to_dict())
    assert deployment.token not in record and secret_cookie not in record
    assert "authorization" not in allowed.json["http"]["headers"] and "cookie" not in allowed.json["http"]["headers"]


def test_a_route_for_https_only_is_refused_over_http(gateway: Target):
    assert gateway.request("GET", "default/secure").status == 426


def test_routes_on_hosts_answer_at_the_root_for_that_host(gateway: Target):
    answer = gateway.request("GET", "on-host", headers={"Host": "api.example.test"})
    assert answer.status == 200 and answer.json["http"]["host"] == "api.example.test"
    assert gateway.request("GET", "on-host").status == 404  # another host
    assert gateway.request("GET", "default/on-host").status == 404  # not under the org


def test_cors_preflights_follow_each_apis_settings(gateway: Target):
    asked = {"Origin": "http://page.test:8000", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}
    allowed = gateway.request("OPTIONS", "default/open", headers=asked)
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://page.test:8000"
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert allowed.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert allowed.headers["Access-Control-Max-Age"] == "60"
    stranger = gateway.request("OPTIONS", "default/open", headers={**asked, "Origin": "http://evil.test"})
    assert stranger.status == 403 and "Access-Control-Allow-Origin" not in stranger.headers
    no_cors = gateway.request("OPTIONS", "default/hello/Ada", headers=asked)
    assert no_cors.status == 403 and "Access-Control-Allow-Origin" not in no_cors.headers
    actual = gateway.request("GET", "default/open", headers={"Origin": "http://page.test:8000"})
    assert actual.headers["Access-Control-Allow-Origin"] == "http://page.test:8000" and actual.headers["Vary"] == "Origin"
    plain = gateway.request("GET", "default/hello/Ada", headers={"Origin": "http://page.test:8000"})
    assert plain.status == 200 and not [h for h in plain.headers if h.lower().startswith("access-control")]


def test_a_running_gateway_follows_api_changes(deployment: Deployment):
    """The standalone gateway is another process: it sees changes through the store alone."""
    client, standalone = deployment.client, deployment.targets["standalone"]

    def status(path: str, want: int) -> int:
        deadline = time.monotonic() + 10
        while True:
            got = standalone.request("GET", path).status
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    assert status("default/late/Ada", 404) == 404
    client.create_api("late", "hello", paths=["/late/{name}"])
    try:
        assert status("default/late/Ada", 200) == 200
        client.update_api("late", paths=["/later/{name}"])
        assert status("default/later/Ada", 200) == 200 and status("default/late/Ada", 404) == 404
        client.update_api("late", enabled=False)
        assert status("default/later/Ada", 404) == 404
    finally:
        client.delete_api("late")
    assert status("default/later/Ada", 404) == 404
