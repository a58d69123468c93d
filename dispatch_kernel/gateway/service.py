"""Gateway: one HTTP request from its route to a run of the route's function and back, for
whichever server received it (the Jupyter extension under `{base_url}dispatch/http/`, or the
standalone `dispatch gateway`).

A route is found in the route tables of the core's ApiManager: first the routes on hosts of the
gateway's own organization (when the Host header names one of theirs), then `/{org}/path` in
that organization's. A request is a run through the core's one submit path (RunManager.submit,
or invoke without waiting for `X-Dispatch-Blocking: false`): recorded, with its `http`, like
every other run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from ..model import ConflictError, DispatchError, ForbiddenError, NotFoundError, Run, RunStatus, UnauthorizedError
from ..server._bridge import LoopBridge
from .auth import CredentialCheck
from .cors import preflight_headers, response_headers
from .requests import GatewayError, Request, function_input, http_record, query_values, segments
from .responses import JSON, RUN_HEADER, Reply, error_reply, run_reply
from .routes import Match, RouteTable

if TYPE_CHECKING:
    from ..core import Dispatch

log = logging.getLogger(__name__)

_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # model.check_name's pattern
BLOCKING_HEADER = "X-Dispatch-Blocking"


class Gateway:
    """Serves the routes of the APIs in a core's store."""

    def __init__(self, core: Dispatch, *, org: str, max_body_size: int, credentials: CredentialCheck,
                 runs_url: str | None = None, threads: int = 8) -> None:
        self.core = core
        self.org = org  # whose routes on hosts this gateway serves
        self.max_body_size = max_body_size
        self.credentials = credentials
        self.runs_url = runs_url  # where REST API v1 lists runs ("/base/dispatch/v1/runs/"), if known
        self.bridge = LoopBridge()
        # Non-blocking runs are recorded before the answer: a store write, off the event loop.
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="dispatch-gateway")

    async def serve(self, request: Request) -> Reply:
        """The answer to `request`; never raises."""
        try:
            return await self._serve(request)
        except GatewayError as exc:
            reply = error_reply(exc.status, exc.message)
            reply.headers += list(exc.headers.items())
            return reply
        except Exception:  # a bug: the caller gets a plain 500, the log the details
            log.exception("the gateway failed on %s %s", request.method, request.path[:200])
            return error_reply(500, "the gateway failed on this request")

    def close(self) -> None:
        """Stop the gateway's threads (the core is its owner's to close)."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ routing

    def _find(self, method: str, path: list[str], host: str) -> tuple[Match | None, list[str]]:
        """The route of `method` on `path`: on `host` among this gateway's organization's
        routes on hosts, else under /{org}/ in that organization's; and the path below it."""
        own = self.core.apis.table(self.org)
        if host in own.hosts:
            found = own.match(method, path, host)
            if found is not None:
                return found, path
        if not path or not _ORG.match(path[0]):
            return None, path
        table: RouteTable = own if path[0] == self.org else self.core.apis.table(path[0])
        return table.match(method, path[1:]), path[1:]

    async def _serve(self, request: Request) -> Reply:
        path = segments(request.path)
        origin = request.headers.get("Origin")
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and wanted:
            return self._preflight(path, request, origin, wanted.strip().upper())
        found, below = self._find(request.method, path, request.host)
        if found is None:
            raise GatewayError(404, f"no route for {request.method} /{'/'.join(path)[:200]}")
        if found.api is None:
            raise GatewayError(405, f"{request.method} is not routed here (allowed: {', '.join(found.allowed)})",
                               {"Allow": ", ".join(found.allowed)})
        api = found.api
        if request.protocol not in api.protocols:
            raise GatewayError(426, f"this route takes {' or '.join(api.protocols)}", {"Upgrade": "HTTPS/1.1"})
        if api.auth == "token":
            self._check_caller(request, api)
        query = query_values(request.query)
        payload = function_input(request, found.params, query, self.max_body_size)
        http = http_record(request, path=below, api=api.name, route=found.template, params=found.params,
                           query=query)
        blocking = request.headers.get(BLOCKING_HEADER, "true").strip().lower() not in ("false", "0", "no")
        try:
            if blocking:
                run = await self.bridge.wait(self.core.runs.submit(api.function, payload, org=api.org, http=http))
                reply = run_reply(run)
            else:
                loop = asyncio.get_running_loop()
                run = await loop.run_in_executor(self.executor, partial(
                    self.core.runs.invoke, api.function, payload, wait=False, org=api.org, http=http))
                reply = run_reply(run) if run.status == RunStatus.FAILED else self._accepted(run, request)
        except DispatchError as exc:  # the function is gone or not READY, or the core is closing
            # Why, in words the public may read: a deploy's reason can name files and packages.
            why = ("does not exist" if isinstance(exc, NotFoundError) else
                   "is not READY" if isinstance(exc, ConflictError) else "cannot run now")
            log.info("route %s of API %s: %s", found.template, api.name, exc)
            raise GatewayError(503, f"function {api.function!r} {why}") from None
        reply.headers += response_headers(api, origin)
        return reply

    def _check_caller(self, request: Request, api: Any) -> None:
        """The caller of an `auth: token` route: 401 without a valid credential, 403 when its
        policies do not allow `invoke` on the function, 404 from another organization."""
        try:
            self.credentials(request.headers.get("Authorization"), api)
        except UnauthorizedError as exc:
            raise GatewayError(401, str(exc), {"WWW-Authenticate": 'Bearer realm="dispatch"'}) from None
        except ForbiddenError as exc:
            raise GatewayError(403, str(exc)) from None
        except NotFoundError:
            # Exactly what a route that does not exist answers (_serve).
            path = "/".join(segments(request.path))[:200]
            raise GatewayError(404, f"no route for {request.method} /{path}") from None

    def _preflight(self, path: list[str], request: Request, origin: str | None, wanted: str) -> Reply:
        """A browser asks whether `origin` may send `wanted` here: 204 with the API's CORS
        headers, or 403 (without any) when its cors does not allow that origin."""
        found, _ = self._find(wanted, path, request.host)
        if found is None:
            raise GatewayError(404, f"no route for /{'/'.join(path)[:200]}")
        if found.api is None:
            raise GatewayError(403, f"{wanted} is not routed here (allowed: {', '.join(found.allowed)})")
        headers = preflight_headers(found.api, origin, found.api.methods,
                                    request.headers.get("Access-Control-Request-Headers"))
        if headers is None:
            raise GatewayError(403, f"this API does not allow cross-origin requests from {origin or 'this page'}")
        return Reply(204, headers)

    def _accepted(self, run: Run, request: Request) -> Reply:
        """202 for a run started without waiting: its id and where REST API v1 shows it."""
        body: dict[str, Any] = {"id": run.id, "status": RunStatus(run.status).value}
        headers = [("Content-Type", JSON), (RUN_HEADER, run.id)]
        if self.runs_url is not None:
            url = self.runs_url + run.id
            if url.startswith("/"):
                url = f"{request.protocol}://{request.headers.get('Host', request.host)}{url}"
            body["url"] = url
            headers.append(("Location", url))
        return Reply(202, headers, json.dumps(body).encode())


__all__ = ["BLOCKING_HEADER", "Gateway"]
