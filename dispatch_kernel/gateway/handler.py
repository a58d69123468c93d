"""GatewayHandler: the tornado handler of every route, the same in the Jupyter extension (under
`{base_url}dispatch/http/`) and in the standalone gateway (at its root).

It is a plain tornado RequestHandler, not a Jupyter one: public routes pay none of Jupyter's
login, XSRF and header machinery, and an `auth: token` route checks its own credential.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from .requests import Request
from .responses import error_reply
from .routes import METHODS
from .service import Gateway


class GatewayHandler(web.RequestHandler):
    """Hands each request under `prefix` to the Gateway and writes its answer."""

    SUPPORTED_METHODS = METHODS

    def initialize(self, gateway: Gateway, prefix: str) -> None:  # type: ignore[override]
        """`prefix`: the raw (percent-encoded) path the routes live under, e.g. `/dispatch/http/`."""
        self.gateway = gateway
        self.prefix = prefix

    async def _serve(self, *_: Any) -> None:
        request = self.request
        path = request.path
        below = path[len(self.prefix):] if path.startswith(self.prefix) else path
        reply = await self.gateway.serve(Request(
            method=request.method or "GET", path=below, query=request.query, headers=request.headers,
            body=request.body, host=request.host_name, protocol=request.protocol, client=request.remote_ip or ""))
        self._write(reply.status, reply.headers, reply.body)

    get = head = post = put = patch = delete = options = _serve

    def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.set_status(status)
        self.clear_header("Content-Type")
        for name, value in headers:
            self.add_header(name, value)
        self.finish(body or None)  # tornado refuses even an empty body with 204 and 304

    def compute_etag(self) -> None:
        """No ETag: an answer is a run's, not a resource's (and hashing each costs time)."""
        return None

    def check_xsrf_cookie(self) -> None:
        """No XSRF check: routes are called by other programs and pages (CORS governs those)."""
        return None

    def check_trusted_origin(self, origin: str) -> bool:
        """Any origin reaches the gateway, which answers by each API's cors."""
        return True

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors tornado raises itself (a body it cannot parse) as {"code", "message"}."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        reply = error_reply(status_code, str(message))
        for name, value in reply.headers:
            self.set_header(name, value)
        self.finish(reply.body)


__all__ = ["GatewayHandler"]
