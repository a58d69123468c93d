"""REST API v1 handlers: parse, authorize, call the core in a thread, serialize.

No logic lives here that another face would need: a handler checks the request against the
OpenAPI document, calls one method of the core (never on the event loop: the core blocks) and
turns the result, or the core's error, into JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..core import Dispatch
from ..model import (
    DeployError,
    DispatchError,
    ErrorType,
    InvalidRequestError,
    Run,
    strict_dumps,
)
from ..packaging.spec import deploy_arguments
from . import openapi

KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream
STREAM_BACKLOG = 10_000  # run changes kept for a slow stream reader before it is cut off
MAX_WAIT = 60.0  # seconds GET runs/{id}?wait= may hold a request
API = "dispatch/v1"


class ApiError(web.HTTPError):
    """An error answered as {"code", "message", ...extra}."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(code)
        self.message = message
        self.extra = extra


class RunHub:
    """Fans run changes of the core out to the open event streams of this server.

    The core calls watchers on whichever thread changed a run; the hub serializes the run there
    (the record is mutable) and hands the text to the event loop. It watches the core only while
    a stream is open, so runs cost nothing extra otherwise.
    """

    def __init__(self, core: Dispatch, org: str) -> None:
        self.core = core
        self.org = org
        self._streams: set[RunStream] = set()
        self._stop: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> RunStream:
        self._loop = asyncio.get_running_loop()
        stream = RunStream()
        self._streams.add(stream)
        if self._stop is None:
            self._stop = self.core.watch(self._changed)
        return stream

    def close(self, stream: RunStream) -> None:
        self._streams.discard(stream)
        stream.end()
        if not self._streams and self._stop is not None:
            self._stop()
            self._stop = None

    def close_all(self) -> None:
        for stream in list(self._streams):
            self.close(stream)

    def _changed(self, run: Run) -> None:  # on the thread that changed the run
        if run.org != self.org or self._loop is None:
            return
        text = strict_dumps(run.to_dict(json_ready=False))
        try:
            self._loop.call_soon_threadsafe(self._publish, run.function, text)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _publish(self, function: str, text: str) -> None:
        for stream in list(self._streams):
            stream.put(function, text)


class RunStream:
    """One open event stream: a bounded backlog and a wake-up for its writer."""

    def __init__(self) -> None:
        self.backlog: deque[tuple[str, str]] = deque()
        self.ready = asyncio.Event()
        self.ended = False

    def put(self, function: str, text: str) -> None:
        if len(self.backlog) >= STREAM_BACKLOG:
            self.end()  # too slow a reader: cut it off rather than hold memory without bound
            return
        self.backlog.append((function, text))
        self.ready.set()

    def end(self) -> None:
        self.ended = True
        self.ready.set()


class LoopBridge:
    """Hands results of the core's Futures to the event loop, waking it once per burst.

    asyncio.wrap_future wakes the loop (a write to its self-pipe) for every Future; runs of a
    batch finish together, so here the first result of a burst schedules one drain and the
    rest join it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future, Future]] = []

    def wait(self, future: Future) -> asyncio.Future:
        """An asyncio Future that takes `future`'s result or exception, on the running loop."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        future.add_done_callback(partial(self._done, loop, waiter))
        return waiter

    def _done(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future, future: Future) -> None:
        with self._lock:
            self._ready.append((waiter, future))
            first = len(self._ready) == 1
        if first:
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop has closed: the server is stopping
                pass

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter, future in ready:
            if waiter.cancelled():
                continue
            error = future.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(future.result())


class DispatchState:
    """What every handler shares: the core, the threads that call it, the limits."""

    def __init__(self, core: Dispatch, *, org: str, max_body_size: int, threads: int,
                 log: logging.Logger | None = None) -> None:
        self.core = core
        self.org = org
        self.max_body_size = max_body_size
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="dispatch-request")
        self.hub = RunHub(core, org)
        self.bridge = LoopBridge()
        self.log = log


class DispatchHandler(APIHandler):
    """The base of every API v1 handler: errors as {"code", "message"}, the core in a thread."""

    auth_resource = "dispatch:api"

    @property
    def state(self) -> DispatchState:
        return self.settings["dispatch_kernel"]

    @property
    def log(self) -> logging.Logger:  # type: ignore[override]
        """The server's log, through the extension's child logger when there is one (app.py)."""
        return self.state.log or super().log

    @property
    def core(self) -> Dispatch:
        return self.state.core

    @property
    def org(self) -> str:
        # One organization per server until identity (accounts, policies) maps users to theirs.
        return self.state.org

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`method(*args, **kwargs)` on a request thread; the core's errors become API errors."""
        loop = asyncio.get_running_loop()
        with self.api_errors():
            return await loop.run_in_executor(self.state.executor, partial(method, *args, **kwargs))

    async def outcome(self, method: Callable[..., Future], *args: Any, **kwargs: Any) -> Any:
        """The result of the Future that `method(*args, **kwargs)` returns at once (no request
        thread waits for it); the core's errors become API errors."""
        with self.api_errors():
            return await self.state.bridge.wait(method(*args, **kwargs))

    @contextmanager
    def api_errors(self) -> Iterator[None]:
        """The core's errors as API errors: 422 for a failed deploy, else the error's own code."""
        try:
            yield
        except DeployError as exc:
            extra = {"function": exc.function.public_dict()} if exc.function is not None else {}
            raise ApiError(422, str(exc), **extra) from None
        except DispatchError as exc:
            if exc.code >= 500:
                raise
            raise ApiError(exc.code, str(exc)) from None

    def body(self, schema: str) -> Any:
        """The JSON body, checked against the OpenAPI schema `schema`: 413 over the limit, 400
        when it is not JSON or not of that shape."""
        data = self.request.body
        limit = self.state.max_body_size
        if len(data) > limit:
            raise ApiError(413, f"the request body is {len(data):,} bytes, over the limit of {limit:,} "
                                "(c.DispatchApp.max_body_size)")
        if not data:
            raise ApiError(400, "the request needs a JSON body")
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        try:
            openapi.validate(schema, value)
        except InvalidRequestError as exc:
            raise ApiError(400, str(exc)) from None
        return value

    def query(self, name: str, kind: type = str, *, low: float | None = None,
              high: float | None = None) -> Any:
        """A query parameter converted to `kind` and range-checked (400 otherwise); None if absent."""
        text = self.get_query_argument(name, None)
        if text is None:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise ApiError(400, f"query parameter {name} must be a{'n integer' if kind is int else ' number'}, "
                                f"not {text[:40]!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"query parameter {name} must be a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ApiError(400, f"query parameter {name} must be between {low:g} and {high:g}")
        return value

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(strict_dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        extra: dict[str, Any] = {}
        if isinstance(exc, ApiError):
            message = exc.message
            extra = exc.extra
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif isinstance(exc, DispatchError):
            message = str(exc)
        elif exc is not None and status_code >= 500:
            message = f"internal error: {type(exc).__name__}: {exc}"
        else:
            message = self._reason
        if status_code == 403 and not self.current_user:
            message = ("not authenticated: send the server's token (Authorization: token ...), "
                       f"or log in and send the X-XSRFToken header ({message})")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": status_code, "message": message, **extra}))

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ApiError):
            return  # an answer, not a failure: the access log already shows the status
        super().log_exception(typ, value, tb)


# ------------------------------------------------------------------------------ functions


class FunctionsHandler(DispatchHandler):
    auth_resource = "dispatch:functions"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        functions = await self.call(self.core.list_functions, self.org)
        self.reply({"items": [f.public_dict() for f in functions]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("FunctionCreate")
        function = await self.call(self._create, spec)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + function.name)
        self.reply(function.public_dict(), 201)

    def _create(self, spec: dict[str, Any]):
        source, name, options = deploy_arguments(spec)
        return self.core.deploy(source, name, org=self.org, expect_revision=0, **options)


class FunctionHandler(DispatchHandler):
    auth_resource = "dispatch:functions"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        function = await self.call(self.core.get_function, name, self.org)
        self.reply(function.public_dict())

    @web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        spec = self.body("FunctionUpdate")
        if spec.get("name", name) != name:
            raise ApiError(400, f"the body names {spec['name']!r}, the path {name!r}: rename by "
                                "creating the new name and deleting the old")
        function = await self.call(self._update, name, spec)
        self.reply(function.public_dict())

    def _update(self, name: str, spec: dict[str, Any]):
        current = self.core.get_function(name, self.org)
        source, name, options = deploy_arguments({**spec, "name": name}, current)
        return self.core.deploy(source, name, org=self.org, expect_revision=spec["revision"], **options)

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.delete_function, name, self.org)
        self.set_status(204)
        self.finish()


# ------------------------------------------------------------------------------ runs


class RunsHandler(DispatchHandler):
    auth_resource = "dispatch:runs"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.query("limit", int, low=1, high=1000) or 100
        before = self.get_query_argument("before", None)
        if before is not None and len(before) > 64:
            raise ApiError(400, "query parameter before must be a run id (the next of a page)")
        runs = await self.call(
            self.core.list_runs, self.org,
            function=self.get_query_argument("function", None),
            status=self.get_query_argument("status", None),
            since=self.query("since", float),
            before=before,
            limit=limit + 1,
        )
        page = runs[:limit]
        more = len(runs) > limit
        self.reply({"items": [run.to_dict(json_ready=False) for run in page], "next": page[-1].id if more else None})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("RunCreate")
        wait = bool(spec.get("wait", False))
        python_form = "args" in spec or "kwargs" in spec
        if python_form and "input" in spec:
            raise ApiError(400, "give either input (JSON) or args and kwargs (the Python call form), not both")
        python = (tuple(spec.get("args") or ()), spec.get("kwargs") or {}) if python_form else None
        if wait:  # no request thread held for the run: waited runs share trips to the workers
            run = await self.outcome(self.core.submit, spec["function"], spec.get("input"), org=self.org,
                                     python=python)
        elif python is not None:
            run = await self.call(self.core.run, spec["function"], *python, wait=False, org=self.org)
        else:
            run = await self.call(self.core.invoke, spec["function"], spec.get("input"), wait=False, org=self.org)
        if run.error is not None and run.error.type == ErrorType.INPUT.value:
            status = 422
        else:
            status = 200 if wait else 202
        self.reply(run.to_dict(json_ready=False), status)


class RunHandler(DispatchHandler):
    auth_resource = "dispatch:runs"

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        wait = self.query("wait", float, low=0, high=MAX_WAIT)
        if wait:
            run = await self.call(self._wait, run_id, wait)
        else:
            run = await self.call(self.core.get_run, run_id, self.org)
        self.reply(run.to_dict(json_ready=False))

    def _wait(self, run_id: str, timeout: float) -> Run:
        try:
            return self.core.wait_run(run_id, timeout, self.org)
        except TimeoutError:
            return self.core.get_run(run_id, self.org)


class RunCancelHandler(DispatchHandler):
    auth_resource = "dispatch:runs"

    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        run = await self.call(self.core.cancel_run, run_id, self.org)
        self.reply(run.to_dict(json_ready=False))


class RunStreamHandler(DispatchHandler):
    """Server-sent events: `event: run` with the run record, on every status change."""

    auth_resource = "dispatch:runs"
    _stream: RunStream | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        function = self.get_query_argument("function", None)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        hub = self.state.hub
        stream = self._stream = hub.open()
        try:
            self.write(": watching runs\n\n")
            await self.flush()
            while not stream.ended:
                try:
                    await asyncio.wait_for(stream.ready.wait(), KEEPALIVE)
                except asyncio.TimeoutError:
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    continue
                stream.ready.clear()
                while stream.backlog:
                    name, text = stream.backlog.popleft()
                    if function is None or name == function:
                        self.write(f"event: run\ndata: {text}\n\n")
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            hub.close(stream)
        if not self._finished:
            self.finish()

    def on_connection_close(self) -> None:
        if self._stream is not None:
            self._stream.end()


# ------------------------------------------------------------------------------ secrets


class SecretsHandler(DispatchHandler):
    auth_resource = "dispatch:secrets"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        secrets = await self.call(self.core.list_secrets, self.org)
        self.reply({"items": [s.public_dict() for s in secrets]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("SecretCreate")
        secret = await self.call(self.core.create_secret, spec["name"], spec["values"], self.org,
                                 spec.get("tags"))
        self.set_header("Location", self.request.path.rstrip("/") + "/" + secret.name)
        self.reply(secret.public_dict(), 201)


class SecretHandler(DispatchHandler):
    auth_resource = "dispatch:secrets"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        secret = await self.call(self.core.get_secret, name, self.org)
        self.reply({**secret.public_dict(), "values": secret.values})

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.delete_secret, name, self.org)
        self.set_status(204)
        self.finish()


# ------------------------------------------------------------------------------ images


class BaseImagesHandler(DispatchHandler):
    auth_resource = "dispatch:images"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        bases = await self.call(self.core.list_base_images, self.org)
        self.reply({"items": [b.to_dict() for b in bases]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("BaseImageCreate")
        base = await self.call(self.core.create_base_image, spec["name"], spec["image_url"],
                               language=spec.get("language", "python3"), org=self.org, tags=spec.get("tags"))
        self.set_header("Location", self.request.path.rstrip("/") + "/" + base.name)
        self.reply(base.to_dict(), 201)


class BaseImageHandler(DispatchHandler):
    auth_resource = "dispatch:images"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        base = await self.call(self.core.get_base_image, name, self.org)
        self.reply(base.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.delete_base_image, name, self.org)
        self.set_status(204)
        self.finish()


class ImagesHandler(DispatchHandler):
    """GET lists images; POST builds one, answering when the build is done: 201 with the image,
    or 422 with the image in ERROR. With `Accept: application/x-ndjson` the build log streams
    as it happens, one JSON object a line ({"log"}), ending with {"image"} or {"error", "image"}."""

    auth_resource = "dispatch:images"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        images = await self.call(self.core.list_images, self.org)
        self.reply({"items": [i.to_dict() for i in images]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("ImageCreate")
        if "application/x-ndjson" in self.request.headers.get("Accept", ""):
            await self._stream(spec)
            return
        image = await self._build(spec, None)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + image.name)
        self.reply(image.to_dict(), 201)

    async def _build(self, spec: dict[str, Any], progress: Callable[[str], None] | None):
        try:
            return await self.call(self.core.create_image, spec["name"], spec["base_image"],
                                   requirements=spec.get("requirements"),
                                   system_packages=spec.get("system_packages"),
                                   org=self.org, tags=spec.get("tags"), progress=progress)
        except ApiError as exc:
            if exc.status_code == 422:  # the build failed: the image is left in ERROR
                image = await self.call(self.core.get_image, spec["name"], self.org)
                exc.extra = {"image": image.to_dict()}
            raise

    async def _stream(self, spec: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def progress(line: str) -> None:  # on the build's thread
            try:
                loop.call_soon_threadsafe(lines.put_nowait, str(line))
            except RuntimeError:  # the loop has closed: the server is stopping
                pass

        build = asyncio.ensure_future(self._build(spec, progress))
        build.add_done_callback(lambda _: lines.put_nowait(None))
        started = closed = False
        while True:
            line = await lines.get()
            if line is None and build.done():
                break
            if line is None or closed:
                continue
            if not started:  # the answer is committed to 200 only once there is a log to stream
                self._start_stream()
                started = True
            try:
                self.write(json.dumps({"log": line}) + "\n")
                await self.flush()
            except StreamClosedError:
                closed = True  # the build goes on; its outcome is in GET images/{name}
        if not started:
            image = build.result()  # an error before any log line is an ordinary error answer
            self._start_stream()
            self.finish(json.dumps({"image": image.to_dict()}) + "\n")
            return
        try:
            last: dict[str, Any] = {"image": build.result().to_dict()}
        except ApiError as exc:
            last = {"error": {"code": exc.status_code, "message": exc.message}, **exc.extra}
        except Exception as exc:
            last = {"error": {"code": 500, "message": f"internal error: {type(exc).__name__}: {exc}"}}
        if not closed:
            try:
                self.finish(json.dumps(last) + "\n")
            except StreamClosedError:
                pass

    def _start_stream(self) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")


class ImageHandler(DispatchHandler):
    auth_resource = "dispatch:images"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        image = await self.call(self.core.get_image, name, self.org)
        self.reply(image.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.delete_image, name, self.org)
        self.set_status(204)
        self.finish()


# ------------------------------------------------------------------------------ the rest


class NotFoundHandler(DispatchHandler):
    """Any other path under dispatch/v1/: a JSON 404, not the server's HTML page."""

    @web.authenticated
    async def get(self, path: str) -> None:
        raise ApiError(404, f"no endpoint {API}/{path}; see {API}/openapi.json")

    post = put = patch = delete = get


class OpenApiHandler(DispatchHandler):
    auth_resource = "dispatch:openapi"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(openapi.document(self.base_url))


def handlers() -> list[tuple[str, type, dict[str, Any]]]:
    """URL patterns (under base_url, which the ExtensionApp prepends) and their handlers."""
    name = r"([^/]+)"
    return [
        (f"{API}/functions/?", FunctionsHandler, {}),
        (f"{API}/functions/{name}", FunctionHandler, {}),
        (f"{API}/runs/?", RunsHandler, {}),
        (f"{API}/runs/stream", RunStreamHandler, {}),
        (f"{API}/runs/{name}/cancel", RunCancelHandler, {}),
        (f"{API}/runs/{name}", RunHandler, {}),
        (f"{API}/secrets/?", SecretsHandler, {}),
        (f"{API}/secrets/{name}", SecretHandler, {}),
        (f"{API}/images/?", ImagesHandler, {}),
        (f"{API}/images/{name}", ImageHandler, {}),
        (f"{API}/base-images/?", BaseImagesHandler, {}),
        (f"{API}/base-images/{name}", BaseImageHandler, {}),
        (f"{API}/openapi.json", OpenApiHandler, {}),
        (f"{API}/(.*)", NotFoundHandler, {}),
    ]


__all__ = ["ApiError", "DispatchHandler", "DispatchState", "RunHub", "handlers"]
