"""HttpClient: the Client over REST API v1 of a Jupyter server that runs the dispatch extension.

It behaves like the in-process LocalClient (the same tests run against both), with the limits
of JSON: arguments and outputs travel as JSON, so a tuple comes back as a list and a value JSON
cannot carry is refused before it is sent. Functions travel as packages (JSON, with the
cloudpickle of the function opaque inside it), built here exactly as the local client builds
them; the server stores them and only its workers load them.

Only the standard library speaks HTTP here: one keep-alive connection per calling thread.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable
import urllib.request
from urllib.parse import quote, urlencode, urlsplit

from ._handles import FunctionHandle, RunHandle
from ._iam_http import HttpIam
from .entities import Api, EventSource, Subscription
from .inputs import json_or_file
from .model import (
    BaseImage,
    ConflictError,
    DeployError,
    DispatchError,
    ForbiddenError,
    Function,
    Image,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    Run,
    RunStatus,
    Secret,
    StorageError,
    UnauthorizedError,
)

log = logging.getLogger(__name__)

_ERRORS: dict[int, type[DispatchError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    507: StorageError,
    413: PayloadTooLargeError,
}
_PAGE = 1000  # the most runs the server returns per request
_LONG_POLL = 30.0  # seconds one GET runs/{id}?wait= may take
_MAP_THREADS = 8
_RECONNECT_DELAY = 1.0


class HttpClient(HttpIam):
    """The Client over REST: `dispatch_kernel.connect(url, token=..., org=...)`. `token` is the
    server's token, or a service account's JWT; `org` the organization to work in (default:
    the server's, or the JWT's)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float | None = None,
                 org: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequestError(f"not a server URL: {url!r} (try http://127.0.0.1:8888/)")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"
        self.token = token or None
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/") + "/dispatch/v1/"
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            # A JWT (a service account's) is a bearer credential; the server's token is Jupyter's.
            jwt = self.token.count(".") == 2 and self.token.startswith("eyJ")
            self._headers["Authorization"] = f"{'Bearer' if jwt else 'token'} {self.token}"
        self.org = org or None
        if self.org:
            self._headers["X-Dispatch-Org"] = self.org
        # Keep the cookies the server sets, as a browser or requests.Session does: a Jupyter
        # server gives each new token-only client a fresh identity and a login cookie, on
        # every request, unless the cookie comes back.
        self._cookies = http.cookiejar.CookieJar()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self._watchers: list[_Watcher] = []
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    # ------------------------------------------------------------------ transport

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=self.timeout)
        with self._lock:
            self._connections.append(connection)
        return connection

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def _request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded JSON) of one request to `dispatch/v1/<path>`; errors are raised."""
        if self._closed:
            raise DispatchError("this client is closed")
        target = self._prefix + path
        if query:
            target += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else _json_bytes(body)
        if method == "POST":  # one key per request, the same on the resend: the server does it once
            headers = {**(headers or {}), "Idempotency-Key": os.urandom(16).hex()}
        resent = False
        for attempt in range(2):
            connection = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._local.connection = self._connect()
            try:
                sent = self._with_cookies(target, {**self._headers, **headers} if headers else self._headers)
                connection.request(method, target, body=data, headers=sent)
                response = connection.getresponse()
                payload = response.read()
                self._keep_cookies(target, response)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop(connection)
                if reused and attempt == 0:
                    resent = True
                    continue  # the server closed an idle keep-alive connection: once more, anew
                raise DispatchError(f"the dispatch server at {self.url} closed the connection: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise DispatchError(f"cannot reach the dispatch server at {self.url}: {exc}") from None
            break
        status = response.status
        if response.will_close:
            self._drop(connection)
        if resent and method == "DELETE" and status == 404:
            # The first try may have been carried out before its connection dropped: what a
            # resent DELETE finds gone, this client deleted. (DELETE is idempotent; the retry
            # must not turn a done deletion into an error.)
            return 204, None
        value = self._decode(status, payload)
        if status >= 400 and not (status == 422 and isinstance(value, dict) and "status" in value):
            raise self._error(status, value)
        return status, value

    def _with_cookies(self, target: str, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus a Cookie header with what the server set for `target`, if anything."""
        if not len(self._cookies):
            return headers
        request = urllib.request.Request(self._origin + target)
        self._cookies.add_cookie_header(request)
        cookie = request.get_header("Cookie")
        return {**headers, "Cookie": cookie} if cookie else headers

    def _keep_cookies(self, target: str, response: http.client.HTTPResponse) -> None:
        if response.getheader("Set-Cookie") is not None:
            self._cookies.extract_cookies(response, urllib.request.Request(self._origin + target))

    def _decode(self, status: int, payload: bytes) -> Any:
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise DispatchError(
                f"{self.url} answered {status} with something other than JSON: is it a Jupyter server "
                "with the dispatch extension (and the right base URL)?"
            ) from None

    def _error(self, status: int, value: Any) -> DispatchError:
        message = value.get("message") if isinstance(value, dict) else None
        message = message or f"the server answered {status}"
        if status == 422 and isinstance(value, dict) and isinstance(value.get("function"), dict):
            return DeployError(message, Function.from_dict(value["function"]))
        if status == 422 and isinstance(value, dict) and isinstance(value.get("image"), dict):
            return DeployError(message)  # an image build failed; the image is left in ERROR
        cls = _ERRORS.get(status)
        if cls is None:
            return DispatchError(f"{message} (HTTP {status})")
        return cls(message)

    # ------------------------------------------------------------------ functions

    def deploy(self, fn: Callable[..., Any] | Any, name: str | None = None, **options: Any) -> FunctionHandle:
        from .packaging import FunctionSource, package

        progress = options.pop("progress", None)
        requirements = list(options.pop("requirements", None) or [])
        source = fn if isinstance(fn, FunctionSource) else package(fn, requirements)
        name = name or source.handler.rsplit(".", 1)[-1]
        body = {"name": name, "source": source.encode(), **_function_fields(options)}
        if progress is not None:
            progress(f"deploying {name} on {self.url}")
        try:
            _, data = self._request("POST", "functions", body)
        except ConflictError:
            data = self._update(name, body)
        return FunctionHandle(self, Function.from_dict(data), fn if callable(fn) else None)

    def _update(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(3):
            current = self.get_function(name)
            try:
                return self._request("PUT", f"functions/{_segment(name)}", {**body, "revision": current.revision})[1]
            except ConflictError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def function(self, name: str) -> FunctionHandle:
        return FunctionHandle(self, self.get_function(name))

    def get_function(self, name: str) -> Function:
        return Function.from_dict(self._request("GET", f"functions/{_segment(name)}")[1])

    def list_functions(self) -> list[Function]:
        return [Function.from_dict(item) for item in self._request("GET", "functions")[1]["items"]]

    def delete_function(self, name: str) -> None:
        self._request("DELETE", f"functions/{_segment(name)}")

    # ------------------------------------------------------------------ runs

    def _post_run(self, body: dict[str, Any]) -> Run:
        return Run.from_dict(self._request("POST", "runs", body)[1])

    def _python_call(self, name: str, args: tuple, kwargs: dict[str, Any], wait: bool,
                     driver: str | None = None) -> Run:
        body: dict[str, Any] = {"function": name, "wait": wait, "args": list(args)}
        if kwargs:
            body["kwargs"] = kwargs
        if driver:
            body["driver"] = driver
        return self._post_run(body)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._python_call(name, args, kwargs, True).result()

    def spawn(self, name: str, *args: Any, driver: str | None = None, **kwargs: Any) -> RunHandle:
        return RunHandle(self, self._python_call(name, args, kwargs, False, driver))

    def map(self, name: str, items: Iterable[Any], *, return_exceptions: bool = False) -> Iterator[Any]:
        dispatch_style = self.get_function(name).convention == "dispatch"
        pool = self._map_pool()

        def submit(item: Any) -> Future:
            args = item if isinstance(item, tuple) and not dispatch_style else (item,)
            return pool.submit(self._python_call, name, args, {}, True)

        def outputs() -> Iterator[Any]:
            window: deque[Future] = deque()
            iterator = iter(items)
            while True:
                while len(window) < 2 * _MAP_THREADS:
                    try:
                        window.append(submit(next(iterator)))
                    except StopIteration:
                        break
                if not window:
                    return
                yield window.popleft().result().result(return_exceptions)

        return outputs()

    def _map_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_MAP_THREADS, thread_name_prefix="dispatch-http-map")
            return self._pool

    def invoke(self, name: str, input: Any = None, *, wait: bool = True, driver: str | None = None) -> Run:
        body: dict[str, Any] = {"function": name, "input": input, "wait": wait}
        if driver:
            body["driver"] = driver
        return self._post_run(body)

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _LONG_POLL if deadline is None else max(0.0, min(_LONG_POLL, deadline - time.monotonic()))
            run = Run.from_dict(self._request("GET", f"runs/{_segment(run_id)}",
                                             query={"wait": f"{wait:.3f}"} if wait > 0 else None)[1])
            if RunStatus(run.status).finished:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} did not finish within {timeout:g}s")

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(self._request("GET", f"runs/{_segment(run_id)}")[1])

    def cancel_run(self, run_id: str) -> Run:
        """Cancel a QUEUED or RUNNING run (a finished one, or one sharing its worker's batch, is a ConflictError)."""
        return Run.from_dict(self._request("POST", f"runs/{_segment(run_id)}/cancel")[1])

    def list_runs(self, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        if limit < 1:
            raise InvalidRequestError("limit must be at least 1")
        runs: list[Run] = []
        while len(runs) < limit:
            query = {"function": function, "status": status, "since": since, "before": before,
                     "limit": min(_PAGE, limit - len(runs))}
            page = self._request("GET", "runs", query=query)[1]
            runs.extend(Run.from_dict(item) for item in page["items"])
            before = page["next"]
            if before is None:
                break
        return runs

    def watch_runs(self, callback: Callable[[Run], None]) -> Callable[[], None]:
        watcher = _Watcher(self, callback)
        with self._lock:
            self._watchers.append(watcher)
        watcher.start()

        def stop() -> None:
            watcher.stop()
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return stop

    # ------------------------------------------------------------------ secrets

    def create_secret(self, name: str, values: dict[str, str]) -> Secret:
        return Secret.from_dict(self._request("POST", "secrets", {"name": name, "values": values})[1])

    def get_secret(self, name: str) -> Secret:
        return Secret.from_dict(self._request("GET", f"secrets/{_segment(name)}")[1])

    def list_secrets(self) -> list[Secret]:
        return [Secret.from_dict(item) for item in self._request("GET", "secrets")[1]["items"]]

    def delete_secret(self, name: str) -> None:
        self._request("DELETE", f"secrets/{_segment(name)}")

    # ------------------------------------------------------------------ events

    def emit(self, type: str | dict[str, Any], data: Any = None, **attributes: Any) -> dict[str, Any]:
        """Publish a CloudEvent (source=, id=, subject=, extensions=); returns the event."""
        if isinstance(type, dict):  # a whole event: structured content mode
            return self._request("POST", "events", type,
                                headers={"Content-Type": "application/cloudevents+json"})[1]
        unknown = sorted(set(attributes) - {"source", "id", "subject", "extensions"})
        if unknown:
            raise InvalidRequestError(f"unknown event attribute option(s): {', '.join(unknown)}")
        body: dict[str, Any] = {"type": type, **{k: v for k, v in attributes.items() if v is not None}}
        if data is not None:
            body["data"] = data
        return self._request("POST", "events", body)[1]

    def subscribe(self, function: str, *, event_type: str, **options: Any) -> Subscription:
        """Run `function` for each matching event (name=, filters=, max_attempts=, tags=)."""
        body = {"function": function, "event_type": event_type,
                **{k: v for k, v in options.items() if v is not None}}
        return Subscription.from_dict(self._request("POST", "subscriptions", body)[1])

    def list_subscriptions(self) -> list[Subscription]:
        return [Subscription.from_dict(item) for item in self._request("GET", "subscriptions")[1]["items"]]

    def get_subscription(self, name: str) -> Subscription:
        return Subscription.from_dict(self._request("GET", f"subscriptions/{_segment(name)}")[1])

    def delete_subscription(self, name: str) -> None:
        self._request("DELETE", f"subscriptions/{_segment(name)}")

    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        """Events given up after their subscription's max_attempts."""
        return self._request("GET", "dead-letters", query={"subscription": subscription})[1]["items"]

    def replay_dead_letter(self, letter_id: str) -> Run:
        """Deliver a dead letter's event again, as a new run recorded as its replay."""
        return Run.from_dict(self._request("POST", f"dead-letters/{_segment(letter_id)}/replay")[1])

    def create_event_source(self, name: str, *, type: str, config: dict[str, Any] | None = None,
                            secrets: list[str] | None = None, **options: Any) -> EventSource:
        body = {"name": name, "type": type, **{k: v for k, v in options.items() if v is not None}}
        if config is not None:
            body["config"] = config
        if secrets is not None:
            body["secrets"] = secrets
        return EventSource.from_dict(self._request("POST", "event-sources", body)[1])

    def list_event_sources(self) -> list[EventSource]:
        return [EventSource.from_dict(item) for item in self._request("GET", "event-sources")[1]["items"]]

    def get_event_source(self, name: str) -> EventSource:
        return EventSource.from_dict(self._request("GET", f"event-sources/{_segment(name)}")[1])

    def delete_event_source(self, name: str) -> None:
        self._request("DELETE", f"event-sources/{_segment(name)}")

    # ------------------------------------------------------------------ images

    def create_base_image(self, name: str, image_url: str, *, language: str = "python3",
                          tags: dict[str, str] | None = None) -> BaseImage:
        """Register a base image (registry/repository:tag) that images are built on."""
        body: dict[str, Any] = {"name": name, "image_url": image_url, "language": language}
        if tags:
            body["tags"] = tags
        return BaseImage.from_dict(self._request("POST", "base-images", body)[1])

    def get_base_image(self, name: str) -> BaseImage:
        return BaseImage.from_dict(self._request("GET", f"base-images/{_segment(name)}")[1])

    def list_base_images(self) -> list[BaseImage]:
        return [BaseImage.from_dict(item) for item in self._request("GET", "base-images")[1]["items"]]

    def delete_base_image(self, name: str) -> None:
        self._request("DELETE", f"base-images/{_segment(name)}")

    def create_image(self, name: str, base: str, *, requirements: Iterable[str] | None = None,
                     system_packages: Iterable[str] | None = None, tags: dict[str, str] | None = None,
                     progress: Callable[[str], None] | None = None) -> Image:
        """Build an image on base image `base` and push it; deploy(fn, image=name) builds on it.
        The server streams the build log to `progress`, line by line, as it happens."""
        body: dict[str, Any] = {"name": name, "base_image": base}
        if requirements:
            body["requirements"] = list(requirements)
        if system_packages:
            body["system_packages"] = list(system_packages)
        if tags:
            body["tags"] = tags
        if progress is None:
            return Image.from_dict(self._request("POST", "images", body)[1])
        return self._build_streamed(body, progress)

    def _build_streamed(self, body: dict[str, Any], progress: Callable[[str], None]) -> Image:
        """POST images with the log streamed (application/x-ndjson), on a connection of its own."""
        if self._closed:
            raise DispatchError("this client is closed")
        data = _json_bytes(body)
        connection = self._connect()
        try:
            headers = self._with_cookies(self._prefix + "images", {**self._headers, "Accept": "application/x-ndjson"})
            try:
                connection.request("POST", self._prefix + "images", body=data, headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise DispatchError(f"cannot reach the dispatch server at {self.url}: {exc}") from None
            if response.status != 200:
                raise self._error(response.status, self._decode(response.status, response.read()))
            last: dict[str, Any] | None = None
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise DispatchError(f"the build log from {self.url} broke off: {exc}") from None
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise DispatchError(f"{self.url} streamed something other than JSON lines") from None
                if isinstance(item, dict) and "log" in item:
                    progress(str(item["log"]))
                elif isinstance(item, dict):
                    last = item
            if last is None:
                raise DispatchError(f"the build log from {self.url} ended without the image")
            error = last.get("error")
            if isinstance(error, dict):
                raise self._error(int(error.get("code") or 500), {**error, "image": last.get("image")})
            return Image.from_dict(last["image"])
        finally:
            self._drop(connection)

    def get_image(self, name: str) -> Image:
        return Image.from_dict(self._request("GET", f"images/{_segment(name)}")[1])

    def list_images(self) -> list[Image]:
        return [Image.from_dict(item) for item in self._request("GET", "images")[1]["items"]]

    def delete_image(self, name: str) -> None:
        self._request("DELETE", f"images/{_segment(name)}")

    # ------------------------------------------------------------------ APIs

    def create_api(self, name: str, function: str, *, methods: list[str] | None = None,
                   paths: list[str] | None = None, hosts: list[str] | None = None,
                   protocols: list[str] | None = None, cors: bool | dict[str, Any] = False,
                   auth: str = "public", enabled: bool = True, tags: dict[str, str] | None = None) -> Api:
        """Route HTTP `methods` on `paths` to `function`."""
        body: dict[str, Any] = {"name": name, "function": function, "paths": list(paths or []), "cors": cors,
                                "auth": auth, "enabled": enabled}
        for key, value in (("methods", methods), ("hosts", hosts), ("protocols", protocols), ("tags", tags)):
            if value is not None:
                body[key] = list(value) if key != "tags" else value
        return Api.from_dict(self._request("POST", "apis", body)[1])

    def get_api(self, name: str) -> Api:
        return Api.from_dict(self._request("GET", f"apis/{_segment(name)}")[1])

    def list_apis(self, function: str | None = None) -> list[Api]:
        return [Api.from_dict(item) for item in self._request("GET", "apis", query={"function": function})[1]["items"]]

    def update_api(self, name: str, *, revision: int | None = None, **changes: Any) -> Api:
        """Change some fields of an API (with `revision`: only if it is still that one)."""
        body = {key: value for key, value in changes.items() if value is not None}
        body["revision"] = revision if revision is not None else self.get_api(name).revision
        return Api.from_dict(self._request("PUT", f"apis/{_segment(name)}", body)[1])

    def delete_api(self, name: str) -> None:
        self._request("DELETE", f"apis/{_segment(name)}")

    def api_urls(self, api: Api) -> list[str]:
        """The URLs of the API's routes on this server."""
        from .gateway.routes import api_urls

        return api_urls(api, self.url + "dispatch/http/")

    # ------------------------------------------------------------------ lifecycle

    def describe(self) -> str:
        """Where this client's functions live, in words."""
        return f"the Dispatch server at {self.url}"

    def close(self) -> None:
        self._closed = True
        with self._lock:
            watchers, self._watchers = self._watchers, []
            connections, self._connections = self._connections, []
            pool, self._pool = self._pool, None
        for watcher in watchers:
            watcher.stop()
        for connection in connections:
            connection.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HttpClient {self.url}>"


class _Watcher:
    """Reads the server's run event stream on a thread and calls back once per change."""

    def __init__(self, client: HttpClient, callback: Callable[[Run], None]) -> None:
        self.client = client
        self.callback = callback
        self._stopped = threading.Event()
        self._opened = threading.Event()
        self._error: Exception | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._loop, name="dispatch-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._opened.wait(30)
        if self._error is not None:
            self.stop()
            raise self._error

    def _loop(self) -> None:
        first = True
        while not self._stopped.is_set():
            try:
                self._read()
            except Exception as exc:  # reported to start() the first time, retried later
                if first:
                    self._error = exc if isinstance(exc, DispatchError) else DispatchError(
                        f"cannot watch runs on {self.client.url}: {exc}")
                    self._opened.set()
                    return
                log.debug("the run stream ended: %s", exc)
            first = False
            self._stopped.wait(_RECONNECT_DELAY)

    def _read(self) -> None:
        client = self.client
        cls = http.client.HTTPSConnection if client._https else http.client.HTTPConnection
        connection = self._connection = cls(client._host, client._port)
        try:
            target = client._prefix + "runs/stream"
            headers = client._with_cookies(target, {**client._headers, "Accept": "text/event-stream"})
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                raise client._error(response.status, client._decode(response.status, response.read()))
            event, data = "", []
            while not self._stopped.is_set():
                line = response.readline()
                if not line:
                    return
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith(":"):
                    self._opened.set()
                elif text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].lstrip())
                elif not text:
                    if event == "run" and data:
                        self._deliver("\n".join(data))
                    event, data = "", []
        finally:
            connection.close()

    def _deliver(self, text: str) -> None:
        try:
            run = Run.from_dict(json.loads(text))
        except Exception:
            log.exception("an unreadable run event")
            return
        try:
            self.callback(run)
        except Exception:
            log.exception("a run watcher failed")

    def stop(self) -> None:
        self._stopped.set()
        connection = self._connection
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(5)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _json_bytes(body: Any) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"over REST, arguments and options travel as JSON: {exc}") from None


def _function_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The REST fields of a function from the keyword options of Client.deploy."""
    fields: dict[str, Any] = {}
    schema: dict[str, Any] = {}
    scaling: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in ("schema_in", "schema_out"):
            if isinstance(value, str):
                value = json_or_file(value, key)
            schema[key[len("schema_"):]] = value
        elif key in ("min_workers", "max_workers", "idle_timeout"):
            scaling[key] = value
        elif key in ("secrets", "timeout", "memory", "cpu", "driver", "drivers", "tags", "image"):
            fields[key] = sorted(set(value)) if key == "secrets" else value
        else:
            raise TypeError(f"deploy() got an unexpected keyword argument {key!r}")
    if schema:
        fields["schema"] = schema
    if scaling:
        fields["scaling"] = scaling
    return fields


__all__ = ["HttpClient"]
