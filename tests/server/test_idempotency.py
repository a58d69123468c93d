"""A POST resent after its connection dropped is carried out once: the REST client sends an
Idempotency-Key, and a real Jupyter server answers the resend with the first answer.

The connection is dropped by a proxy on 127.0.0.1 between the client and the server: it lets
the request through, reads the server's whole answer, then closes the client's connection
without passing it on (the server acted, the client never heard).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

import dispatch_kernel as dk
from dispatch_kernel.server import _idempotency
from tests.server.live import ThreadedServer


def _read_message(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP message (headers and a Content-Length body) from `sock`, None at EOF."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        assert name.strip().lower() != b"transfer-encoding", "the proxy reads whole bodies only"
    size = len(head) + 4 + length
    while len(buffer) < size:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    message = bytes(buffer[:size])
    del buffer[:size]
    return message


class DroppingProxy:
    """Relays HTTP/1.1 requests to `port`, one upstream connection per client connection;
    the answer to the first request `drop(request_line)` picks is read, then the client's
    connection is closed without it."""

    def __init__(self, port: int, drop: Callable[[bytes], bool]) -> None:
        self.upstream = port
        self.drop = drop
        self.dropped: list[bytes] = []  # the request lines whose answers were withheld
        self.lines: list[bytes] = []  # every request line relayed
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        client.settimeout(30)
        with client, socket.create_connection(("127.0.0.1", self.upstream), timeout=30) as server:
            from_client, from_server = bytearray(), bytearray()
            while not self._stop.is_set():
                request = _read_message(client, from_client)
                if request is None:
                    return
                server.sendall(request)
                answer = _read_message(server, from_server)
                if answer is None:
                    return
                line = request.split(b"\r\n", 1)[0]
                self.lines.append(line)
                if not self.dropped and self.drop(line):
                    self.dropped.append(line)
                    return  # carried out by the server, never heard by the client
                client.sendall(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def server(home, tmp_path) -> Iterator[ThreadedServer]:
    the_server = ThreadedServer(home, tmp_path / "server")
    yield the_server
    the_server.stop()


def _proxied(server: ThreadedServer, drop: Callable[[bytes], bool]) -> tuple[DroppingProxy, str]:
    proxy = DroppingProxy(server.port, drop)
    return proxy, server.url.replace(f":{server.port}/", f":{proxy.port}/")


def add(x, y):
    return x + y


def test_a_run_whose_answer_was_lost_is_started_once_by_the_resend(server):
    with dk.connect(server.url, token=server.token) as direct:
        direct.deploy(add, name="add")
    proxy, url = _proxied(server, lambda line: line.startswith(b"POST ") and b"/runs " in line)
    try:
        with dk.connect(url, token=server.token) as client:
            client.list_functions()  # the connection is now kept alive: the next request reuses it
            run = client.function("add").spawn(2, 3)  # its answer is dropped; the client resends
            assert run.result(timeout=30) == 5
            assert len(proxy.dropped) == 1
    finally:
        proxy.close()
    with dk.connect(server.url, token=server.token) as direct:
        runs = direct.function("add").runs()
    assert [r.id for r in runs] == [run.id]  # one run: the resend got the first answer
    assert runs[0].status == "SUCCEEDED" and runs[0].output == 5


def test_a_function_created_whose_answer_was_lost_is_created_once(server):
    proxy, url = _proxied(server, lambda line: line.startswith(b"POST ") and b"/functions " in line)
    try:
        with dk.connect(url, token=server.token) as client:
            client.list_functions()
            fn = client.deploy(add, name="add")
            assert fn(1, 2) == 3
            assert len(proxy.dropped) == 1
    finally:
        proxy.close()
    # The resend got the first answer (201): no 409 conflict, so no update (PUT) followed.
    methods = [line.split(b" ", 1)[0] for line in proxy.lines if b"/functions" in line]
    assert methods.count(b"POST") == 2 and b"PUT" not in methods
    with dk.connect(server.url, token=server.token) as direct:
        once = direct.deploy(add, name="add-once")  # what a single deploy leaves
        assert direct.get_function("add").revision == once.function.revision


def _post(server: ThreadedServer, path: str, body: dict, key: str | None,
          org: str | None = None) -> tuple[int, dict, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if org is not None:
        headers["X-Dispatch-Org"] = org
    try:
        connection.request("POST", server.url.split(f":{server.port}", 1)[1] + "dispatch/v1/" + path,
                           body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    return response.status, json.loads(payload) if payload else {}, response


def _runs(server: ThreadedServer) -> list:
    with dk.connect(server.url, token=server.token) as direct:
        return direct.function("add").runs()


def test_the_same_key_and_request_again_is_the_first_answer_replayed(server):
    with dk.connect(server.url, token=server.token) as direct:
        direct.deploy(add, name="add")
    body = {"function": "add", "input": {"x": 1, "y": 2}}
    status, first, response = _post(server, "runs", body, "key-1")
    assert status == 202 and response.getheader("Idempotent-Replayed") is None
    status, again, response = _post(server, "runs", body, "key-1")
    assert status == 202 and again == first  # the same run record, as first answered
    assert response.getheader("Idempotent-Replayed") == "true"
    assert [r.id for r in _runs(server)] == [first["id"]]
    # Another key is another request: a second run.
    status, other, _ = _post(server, "runs", body, "key-2")
    assert status == 202 and other["id"] != first["id"]
    assert len(_runs(server)) == 2


def test_a_key_reused_with_another_body_is_refused_and_does_nothing(server):
    with dk.connect(server.url, token=server.token) as direct:
        direct.deploy(add, name="add")
    status, first, _ = _post(server, "runs", {"function": "add", "input": {"x": 1, "y": 2}}, "key-1")
    assert status == 202
    status, error, _ = _post(server, "runs", {"function": "add", "input": {"x": 5, "y": 5}}, "key-1")
    assert status == 422
    assert error["code"] == 422 and "Idempotency-Key" in error["message"] and "another request" in error["message"]
    # Another path with the same key is another request too.
    status, error, _ = _post(server, "secrets", {"name": "s", "values": {"a": "b"}}, "key-1")
    assert status == 422
    assert [r.id for r in _runs(server)] == [first["id"]]
    with dk.connect(server.url, token=server.token) as direct:
        assert direct.list_secrets() == []


def test_a_malformed_key_is_a_bad_request_that_does_nothing(server):
    with dk.connect(server.url, token=server.token) as direct:
        direct.deploy(add, name="add")
    body = {"function": "add", "input": {"x": 1, "y": 2}}
    for key in ("x" * 256, "caf\u00e9"):
        status, error, _ = _post(server, "runs", body, key.encode("utf-8").decode("latin-1"))
        assert status == 400 and "Idempotency-Key" in error["message"]
    assert _runs(server) == []


def test_an_error_answer_is_replayed_too_and_a_post_without_a_key_is_carried_out_each_time(server):
    status, first, _ = _post(server, "runs", {"function": "missing", "input": {}}, "key-1")
    assert status == 404
    status, again, response = _post(server, "runs", {"function": "missing", "input": {}}, "key-1")
    assert (status, again) == (404, first) and response.getheader("Idempotent-Replayed") == "true"
    with dk.connect(server.url, token=server.token) as direct:
        direct.deploy(add, name="add")
    body = {"function": "add", "input": {"x": 1, "y": 2}}
    assert _post(server, "runs", body, None)[0] == 202
    assert _post(server, "runs", body, None)[0] == 202
    assert len(_runs(server)) == 2


def test_keys_are_kept_per_organization(server):
    with dk.connect(server.url, token=server.token) as direct:
        direct.create_organization("other")
    body = {"name": "s", "values": {"a": "b"}}
    status, _, _ = _post(server, "secrets", body, "key-1")
    assert status == 201
    # The same key in another organization is another request, carried out there.
    status, _, response = _post(server, "secrets", body, "key-1", org="other")
    assert status == 201 and response.getheader("Idempotent-Replayed") is None


# ------------------------------------------------------------------ the bounds, in memory


def _run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def test_the_kept_answers_are_bounded_in_count_and_age():
    async def scenario() -> None:
        keys = _idempotency.IdempotencyKeys(keep=3600, max_entries=3)
        for n in range(5):
            scope = ("default", "owner", f"k{n}")
            assert await keys.claim(scope, "f") is None
            keys.remember(scope, _idempotency.Answer(200, b"{}"))
        assert len(keys) == 3
        assert await keys.claim(("default", "owner", "k0"), "f") is None  # the oldest went first
        assert (await keys.claim(("default", "owner", "k4"), "f")).status == 200

        aging = _idempotency.IdempotencyKeys(keep=0)
        scope = ("default", "owner", "k")
        assert await aging.claim(scope, "f") is None
        aging.remember(scope, _idempotency.Answer(200, b"{}"))
        assert await aging.claim(scope, "f") is None  # expired: carried out anew

    _run(scenario())


def test_a_resend_waits_for_the_first_try_and_a_5xx_is_not_kept():
    import asyncio

    async def scenario() -> None:
        keys = _idempotency.IdempotencyKeys()
        scope = ("default", "owner", "k")
        assert await keys.claim(scope, "f") is None
        waiting = asyncio.ensure_future(keys.claim(scope, "f"))
        await asyncio.sleep(0)
        assert not waiting.done()  # the first try is still being carried out
        keys.remember(scope, _idempotency.Answer(202, b'{"id": "r"}'))
        assert (await waiting).body == b'{"id": "r"}'

        failing = ("default", "owner", "k5")
        assert await keys.claim(failing, "f") is None
        waiting = asyncio.ensure_future(keys.claim(failing, "f"))
        await asyncio.sleep(0)
        keys.remember(failing, _idempotency.Answer(500, b"{}"))
        assert await waiting is None  # the resend carries it out itself
        with pytest.raises(_idempotency.KeyReused):
            await keys.claim(failing, "another request")

    _run(scenario())
