"""REST API v1: runs, runs/{id}, runs/{id}/cancel, and the run stream (runs/stream)."""

from __future__ import annotations

import asyncio
import json

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..model import ErrorType
from ._streams import KEEPALIVE, RunStream
from .base import ApiError, DispatchHandler

MAX_WAIT = 60.0  # seconds GET runs/{id}?wait= may hold a request


class RunsHandler(DispatchHandler):
    """List runs (newest first, a page at a time); start one, waiting for it or not."""

    auth_resource = "dispatch:runs"
    path = "runs"

    def target(self) -> tuple[str, str] | None:
        """Starting a run is `invoke` on its function (`functions/NAME`)."""
        if self.request.method != "POST":
            return super().target()
        function = self.body_field("function")  # None: the body check answers 400 after
        return "invoke", f"functions/{function}" if isinstance(function, str) else "functions"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.query("limit", int, low=1, high=1000) or 100
        before = self.get_query_argument("before", None)
        if before is not None and len(before) > 64:
            raise ApiError(400, "query parameter before must be a run id (the next of a page)")
        runs = await self.call(
            self.core.runs.list_runs, self.org,
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
        driver = spec.get("driver")
        if wait:  # no request thread held for the run: waited runs share trips to the workers
            run = await self.outcome(self.core.runs.submit, spec["function"], spec.get("input"), org=self.org,
                                     python=python, driver=driver)
        elif python is not None:
            run = await self.call(self.core.runs.run, spec["function"], *python, wait=False, org=self.org,
                                  driver=driver)
        else:
            run = await self.call(self.core.runs.invoke, spec["function"], spec.get("input"), wait=False,
                                  org=self.org, driver=driver)
        if run.error is not None and run.error.type == ErrorType.INPUT.value:
            status = 422
        else:
            status = 200 if wait else 202
        self.reply(run.to_dict(json_ready=False), status)


class RunHandler(DispatchHandler):
    """One run; `?wait=SECONDS` holds the answer until it has finished (or that long)."""

    auth_resource = "dispatch:runs"
    path = "runs/{id}"

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        wait = self.query("wait", float, low=0, high=MAX_WAIT) or 0.0
        run = await self.call(self.core.runs.get_run, run_id, self.org, wait=wait)
        self.reply(run.to_dict(json_ready=False))


class RunCancelHandler(DispatchHandler):
    """Cancel a run: a queued one never starts, a running one is stopped."""

    auth_resource = "dispatch:runs"
    path = "runs/{id}/cancel"

    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        run = await self.call(self.core.runs.cancel_run, run_id, org=self.org)
        self.reply(run.to_dict(json_ready=False))


class RunStreamHandler(DispatchHandler):
    """Server-sent events: `event: run` with the run record, on every status change."""

    auth_resource = "dispatch:runs"
    path = "runs/stream"
    _stream: RunStream | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        function = self.get_query_argument("function", None)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        hub = self.state.hub
        stream = self._stream = hub.open(self.org)
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
        """The client went away: end its stream."""
        if self._stream is not None:
            self._stream.end()


HANDLERS = [RunsHandler, RunStreamHandler, RunCancelHandler, RunHandler]
