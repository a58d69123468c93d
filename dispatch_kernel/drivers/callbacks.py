"""Answers that come back later, over HTTP: where OpenFaaS's queue-worker posts a queued run's
answer (the X-Callback-Url of `/async-function/{name}`).

A CallbackReceiver listens on an address of this machine. Each run queued on the engine gets a
path of its own, an unguessable token (so that nobody else can answer for it), and the thread
that queued the run waits for the POST to that path. What is posted is only handed over: the
driver reads it with load_answer, which accepts nothing but outcomes.
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

MAX_ANSWER = 256 << 20  # bytes: an answer larger than this is refused (413)


class Answer(NamedTuple):
    """What the engine posted: the function's HTTP status (X-Function-Status) and body."""

    status: int
    body: bytes


class _Waiting:
    __slots__ = ("arrived", "answer")

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.answer: Answer | None = None


class CallbackReceiver:
    """An HTTP server taking answers posted to per-run paths, and the threads waiting on them."""

    def __init__(self, listen: str, public_url: str = "") -> None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a callback address is HOST:PORT, not {listen!r}")
        self._address = (host.strip("[]"), int(port))
        self._public = public_url.rstrip("/")
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL the engine is given (the listening address unless one was configured)."""
        server = self._start()
        if self._public:
            return self._public
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    def _start(self) -> ThreadingHTTPServer:
        with self._lock:
            if self._server is None:
                server = ThreadingHTTPServer(self._address, _Handler)
                server.daemon_threads = True
                server.receiver = self  # type: ignore[attr-defined]
                threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                 name="dispatch-callbacks").start()
                self._server = server
            return self._server

    def expect(self) -> tuple[str, str]:
        """A new token and the callback URL that answers it."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._waiting[token] = _Waiting()
        return token, f"{self.url}/{token}"

    def wait(self, token: str, timeout: float | None) -> Answer | None:
        """The answer posted for `token`, or None when none came within `timeout` seconds (or
        the receiver closed); the token is forgotten either way."""
        waiting = self._waiting.get(token)
        if waiting is None:
            return None
        try:
            waiting.arrived.wait(timeout)
            return waiting.answer
        finally:
            self.forget(token)

    def forget(self, token: str) -> None:
        """Stop waiting for `token`: a later POST to it is refused (404)."""
        with self._lock:
            self._waiting.pop(token, None)

    def deliver(self, token: str, answer: Answer) -> bool:
        """Hand `answer` to whoever waits on `token`; False when nobody does."""
        with self._lock:
            waiting = self._waiting.get(token)
        if waiting is None or waiting.arrived.is_set():
            return False
        waiting.answer = answer
        waiting.arrived.set()
        return True

    def close(self) -> None:
        """Stop listening; every waiting thread wakes with no answer."""
        with self._lock:
            server, self._server = self._server, None
            waiting = list(self._waiting.values())
        for one in waiting:
            one.arrived.set()
        if server is not None:
            server.shutdown()
            server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "dispatch-callbacks/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_ANSWER:
            self.close_connection = True
            return self._reply(413)
        body = self.rfile.read(length)
        try:
            status = int(self.headers.get("X-Function-Status") or 200)
        except ValueError:
            return self._reply(400)
        token = self.path.split("?", 1)[0].strip("/")
        receiver: CallbackReceiver = self.server.receiver  # type: ignore[attr-defined]
        self._reply(200 if receiver.deliver(token, Answer(status, body)) else 404)


__all__ = ["Answer", "CallbackReceiver"]
