"""The REST client behaves like the in-process one: the client tests run against both.

The tests imported below from test_functions and test_secrets are collected here a second time
with this module's `client` fixture, once per client: "local" (a core in this process) and
"rest" (dk.connect(url, token=...) to a real Jupyter server with the extension, on a thread).
"""

from __future__ import annotations

import threading
import time

import pytest

import dispatch_kernel as dk
from dispatch_kernel import HttpClient
from dispatch_kernel.model import ForbiddenError, NotFoundError
from tests.server.live import ThreadedServer
from tests.test_functions import (  # noqa: F401  (collected again, over both clients)
    test_a_failed_deploy_leaves_the_function_in_error_with_the_reason,
    test_an_exception_is_a_function_error_with_the_functions_own_stack_trace,
    test_bad_deploy_options_are_clear_errors_that_create_nothing,
    test_concurrent_calls_from_many_threads,
    test_deploy_call_spawn_map,
    test_dispatch_convention_with_secret_and_schema,
    test_each_run_is_recorded_with_input_output_logs_and_times,
    test_get_list_delete_functions,
    test_invalid_input_is_an_input_error_before_any_code_runs,
    test_invalid_output_is_a_function_error,
    test_invoke_without_waiting_returns_the_queued_run,
    test_json_input_maps_to_arguments_of_plain_functions,
    test_lifecycle_and_idempotent_redeploy,
    test_map_raises_on_the_first_failure_or_returns_exceptions,
    test_output_written_by_c_code_and_subprocesses_is_captured,
    test_redeploy_while_runs_are_in_flight,
    test_unknown_function_and_run_are_not_found,
    test_several_drivers_and_a_pinned_run,
    test_waiting_too_little_is_a_timeout_error,
)
from tests.test_secrets import (  # noqa: F401
    test_create_get_list_delete,
    test_no_file_under_home_holds_a_secret_in_plain_text,
    test_secrets_are_masked_in_logs_and_errors,
)


@pytest.fixture
def server(home, tmp_path):
    """A Jupyter server with the dispatch extension whose core lives in `home`."""
    the_server = ThreadedServer(home, tmp_path / "server")
    yield the_server
    the_server.stop()


@pytest.fixture(params=["local", "rest"])
def client(request, home):
    if request.param == "local":
        with dk.connect(home=home) as the_client:
            yield the_client
        return
    server = request.getfixturevalue("server")
    with dk.connect(server.url, token=server.token) as the_client:
        yield the_client


@pytest.fixture
def rest(server):
    with dk.connect(server.url, token=server.token) as the_client:
        yield the_client


def add(x, y):
    return x + y


def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


def _eventually(predicate, budget=10.0):
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --------------------------------------------------------------------------- both clients


def test_the_client_satisfies_the_client_protocol(client):
    assert isinstance(client, dk.Client)
    assert client.describe()


def test_watchers_see_every_status_change(client):
    seen = []
    stop = client.watch_runs(lambda run: seen.append((run.id, str(run.status))))
    fn = client.deploy(add)
    fn(1, 2)
    run_id = client.list_runs(function="add")[0].id
    assert _eventually(lambda: [s for rid, s in seen if rid == run_id] == ["QUEUED", "RUNNING", "SUCCEEDED"])
    stop()
    fn(3, 4)
    time.sleep(0.2)
    assert len(seen) == 3


def test_secret_values_must_be_strings(client):
    with pytest.raises(dk.InvalidRequestError):
        client.create_secret("bad", {"port": 5432})
    assert client.list_secrets() == []


def test_calls_with_positional_and_keyword_arguments(client):
    def describe(a, b=0, *rest, c=None):
        return [a, b, list(rest), c]

    fn = client.deploy(describe)
    assert fn(1, 2, 3, c=4) == [1, 2, [3], 4]
    assert fn(a=5) == [5, 0, [], None]
    assert client.list_runs(function="describe")[-1].input == {"args": [1, 2, 3], "kwargs": {"c": 4}}


def test_runs_are_listed_newest_first_across_pages(client):
    fn = client.deploy(add)
    for i in range(5):
        fn(i, 0)
    runs = client.list_runs(function="add", limit=3)
    assert [r.output for r in runs] == [4, 3, 2]
    older = client.list_runs(function="add", before=runs[-1].id)
    assert [r.output for r in older] == [1, 0]
    assert client.list_runs(function="add", status="failed") == []


@pytest.fixture(params=["local", "rest"])
def one_thread_client(request, home, tmp_path):
    """A client whose core carries one non-blocking run at a time: the next ones stay QUEUED."""
    if request.param == "local":
        from dispatch_kernel.settings import Settings

        with dk.connect(settings=Settings(home=home, run_threads=1)) as the_client:
            yield the_client
        return
    server = ThreadedServer(home, tmp_path / "server", run_threads=1)
    try:
        with dk.connect(server.url, token=server.token) as the_client:
            yield the_client
    finally:
        server.stop()


def test_queued_and_running_runs_can_be_cancelled_and_finished_ones_cannot(one_thread_client):
    client = one_thread_client
    fn = client.deploy(nap)
    assert fn(0) == 0  # a warm worker: the next run reaches it as soon as it is RUNNING
    first = fn.spawn(30)
    assert _eventually(lambda: client.get_run(first.id).status == dk.RunStatus.RUNNING)
    second = fn.spawn(0)
    assert client.get_run(second.id).status == dk.RunStatus.QUEUED
    cancelled = client.cancel_run(second.id)
    assert cancelled.status == dk.RunStatus.CANCELLED
    assert cancelled.error.type == "SystemError" and "cancelled" in cancelled.error.message
    started = time.monotonic()
    stopped = first.cancel()
    assert stopped.status == dk.RunStatus.CANCELLED and time.monotonic() - started < 10
    assert "cancelled while it ran" in stopped.error.message
    assert first.wait(30).status == dk.RunStatus.CANCELLED
    with pytest.raises(dk.ConflictError, match="already finished"):
        client.cancel_run(second.id)
    assert client.wait_run(second.id, 30).status == dk.RunStatus.CANCELLED
    with pytest.raises(dk.RunSystemError, match="cancelled"):
        second.result(30)
    assert client.get_run(second.id).status == dk.RunStatus.CANCELLED  # as stored
    assert client.get_run(first.id).status == dk.RunStatus.CANCELLED
    assert fn(0) == 0  # the stopped worker was replaced
    with pytest.raises(dk.NotFoundError):
        client.cancel_run("0000")


# --------------------------------------------------------------------------- REST only


def test_a_kernel_of_the_server_finds_it_through_the_environment(server, monkeypatch):
    monkeypatch.setenv("DISPATCH_URL", server.url)
    monkeypatch.setenv("DISPATCH_TOKEN", server.token)
    with dk.connect() as found:
        assert isinstance(found, HttpClient)
        assert found.describe() == f"the Dispatch server at {server.url}"
        assert found.list_functions() == []
    with dk.connect(home=server.home) as local:  # an explicit home still means embedded
        assert isinstance(local, dk.LocalClient)


def test_connect_with_a_url_takes_no_local_settings(server):
    with pytest.raises(TypeError, match="home, settings and store are the server's"):
        dk.connect(server.url, token=server.token, home=server.home)
    with pytest.raises(TypeError, match="home, settings and store are the server's"):
        dk.connect(server.url, token=server.token, store="postgresql://db/dispatch")


def test_connect_with_a_url_and_an_org_works_in_that_org(server):
    with dk.connect(server.url, token=server.token, org="elsewhere") as client:
        assert client.org == "elsewhere"
        with pytest.raises(NotFoundError, match="no organization named 'elsewhere'"):
            client.list_functions()


def test_a_wrong_token_is_forbidden(server):
    with dk.connect(server.url, token="wrong") as intruder, pytest.raises(ForbiddenError, match="not authenticated"):
        intruder.list_functions()


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    from dispatch_kernel.images.services import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    with dk.connect(url, token="t") as nowhere, pytest.raises(dk.DispatchError, match="cannot reach the dispatch server"):
        nowhere.list_functions()


def test_a_url_that_is_no_dispatch_server_says_so(server):
    # The right server with the wrong base URL answers with an HTML page, not the API.
    with dk.connect(f"http://127.0.0.1:{server.port}/", token=server.token) as wrong:
        with pytest.raises(dk.DispatchError, match="with the dispatch extension|no function|answered"):
            wrong.list_functions()


def test_arguments_that_json_cannot_carry_are_refused_before_sending(rest):
    rest.deploy(add)
    with pytest.raises(dk.InvalidRequestError, match="travel as JSON"):
        rest.call("add", {1, 2}, 3)
    assert rest.list_runs() == []


def test_outputs_come_back_as_json(rest):
    def pair():
        return (1, "two")

    assert rest.deploy(pair)() == [1, "two"]


def test_a_run_handle_follows_the_run(rest):
    fn = rest.deploy(nap)
    handle = fn.spawn(0.3)
    assert handle.status in (dk.RunStatus.QUEUED, dk.RunStatus.RUNNING)
    assert handle.result(30) == 0.3
    assert handle.logs == {"stdout": "", "stderr": ""}


def test_many_threads_share_one_client(rest):
    fn = rest.deploy(add, max_workers=2)
    results, errors = [], []

    def worker(i):
        try:
            results.append(fn(i, i))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and sorted(results) == [2 * i for i in range(32)]


def test_the_client_keeps_the_login_cookie_so_the_server_knows_it_again(rest, monkeypatch):
    set_cookies: list[str | None] = []
    keep = HttpClient._keep_cookies

    def recording(self, target, response):
        set_cookies.append(response.getheader("Set-Cookie"))
        keep(self, target, response)

    monkeypatch.setattr(HttpClient, "_keep_cookies", recording)
    for _ in range(3):
        rest.list_functions()
    assert set_cookies[0] is not None  # the server's login cookie for this token's identity
    assert set_cookies[1:] == [None, None]  # sent back, so not set again
    assert len(rest._cookies) == 1


def _dropping_server(answers: list[bytes | None]) -> tuple[int, threading.Thread]:
    """A raw HTTP server on 127.0.0.1 that gives each request the next answer in turn; None
    reads the request, then closes the connection without answering (a deletion carried out
    whose answer was lost)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        pending = list(answers)
        with listener:
            while pending:
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(10)
                    while pending:
                        request = b""
                        while b"\r\n\r\n" not in request:
                            chunk = connection.recv(65536)
                            if not chunk:
                                break
                            request += chunk
                        if not request:
                            break
                        answer = pending.pop(0)
                        if answer is None:
                            break  # read, carried out, never answered: the connection drops
                        connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def _answer(status: str, body: str) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"\r\n{body}").encode()


def test_a_delete_resent_after_its_connection_dropped_is_done_when_the_retry_finds_it_gone():
    port, thread = _dropping_server([_answer("200 OK", '{"name": "f", "kind": "function"}'), None,
                                     _answer("404 Not Found", '{"code": 404, "message": "no function named \'f\'"}')])
    client = HttpClient(f"http://127.0.0.1:{port}/")
    try:
        client._request("GET", "functions/f")  # the connection is now one kept alive, then reused
        client.delete_function("f")  # its answer is lost; the retry finds f gone: deleted
    finally:
        client.close()
    thread.join(10)


def test_a_get_resent_after_its_connection_dropped_still_reports_not_found():
    port, thread = _dropping_server([_answer("200 OK", "{}"), None,
                                     _answer("404 Not Found", '{"code": 404, "message": "no function named \'f\'"}')])
    client = HttpClient(f"http://127.0.0.1:{port}/")
    try:
        client._request("GET", "functions/f")
        with pytest.raises(NotFoundError):
            client._request("GET", "functions/f")
    finally:
        client.close()
    thread.join(10)
