"""What every REST API v1 handler shares: the state of the extension, errors as JSON, the core
called off the event loop, bodies checked against the OpenAPI document.

No logic lives in a handler that another face would need: a handler parses, authorizes, calls
one manager method of the core (never on the event loop: the core blocks) and serializes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, ClassVar, Iterator
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..core import Dispatch
from ..identity.policies import Principal
from ..identity.tokens import looks_like_jwt
from ..model import DeployError, DispatchError, InvalidRequestError, StorageError, acting_as, strict_dumps
from . import _idempotency as idempotency
from . import openapi
from ._identity import ORG_HEADER, default_target, principal_of, valid_org
from ._bridge import LoopBridge
from ._streams import RunHub

API = "dispatch/v1"


class ApiError(web.HTTPError):
    """An error answered as {"code", "message", ...extra}."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(code)
        self.message = message
        self.extra = extra


class DispatchState:
    """What every handler shares: the core, the threads that call it, the limits."""

    def __init__(self, core: Dispatch, *, org: str, max_body_size: int, threads: int,
                 log: logging.Logger | None = None, owner: str = "owner") -> None:
        self.core = core
        self.org = org
        self.owner = owner  # who holds the server's token, when Jupyter's own auth is in use
        self.max_body_size = max_body_size
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="dispatch-request")
        self.hub = RunHub(core.runs)
        self.bridge = LoopBridge()
        self.log = log
        self.idempotency = idempotency.IdempotencyKeys()  # answers to resent POSTs (_idempotency.py)



class DispatchHandler(APIHandler):
    """The base of every API v1 handler: errors as {"code", "message"}, the core in a thread.

    A handler serves the OpenAPI path in `path` (under dispatch/v1/): routes.py makes the URL
    patterns from it, and a test checks that handlers and the document name the same paths
    and methods.
    """

    auth_resource = "dispatch:api"
    path: ClassVar[str] = ""
    principal: Principal | None = None  # who asks, once authenticated (prepare)
    _org: str | None = None
    _token_org: str | None = None  # the organization of a service account's JWT
    _idempotency_scope: idempotency.Scope | None = None  # the key this request carries out

    @property
    def state(self) -> DispatchState:
        """What every handler of this server shares."""
        return self.settings["dispatch_kernel"]

    @property
    def log(self) -> logging.Logger:  # type: ignore[override]
        """The server's log, through the extension's child logger when there is one (app.py)."""
        return self.state.log or super().log

    @property
    def core(self) -> Dispatch:
        """The server's Dispatch core."""
        return self.state.core

    @property
    def org(self) -> str:
        """The organization the request works in: the X-Dispatch-Org header, else that of the
        service account's JWT, else the server's (c.DispatchApp.org)."""
        if self._org is None:
            header = self.request.headers.get(ORG_HEADER)
            if header is not None and not valid_org(header.strip()):
                raise ApiError(400, f"{ORG_HEADER} is not an organization name: {header[:70]!r}")
            self._org = (header.strip() if header else None) or self._token_org or self.state.org
        return self._org

    def target(self) -> tuple[str, str] | None:
        """(action, resource) this request needs a policy for; None for what needs none.
        By default from the method and the path (_identity.default_target)."""
        action, resource = default_target(self.request.method or "GET", self.path, tuple(self.path_args))
        if action == "create" and "/" not in resource:
            # Creating is done on the name the body gives (`functions/nightly-a`), so a rule on
            # `functions/nightly-*` may allow it; a body without one is answered 400 later.
            name = self.body_field("name")
            if isinstance(name, str) and name:
                resource = f"{resource}/{name}"
        return action, resource

    async def also_needs(self) -> list[tuple[str, str]]:
        """(action, resource) pairs the request needs beyond target(): what it would let run
        in the caller's name later (a subscription, a public route run their function, so who
        makes one must be allowed to invoke it). None by default."""
        return []

    def body_field(self, key: str) -> Any:
        """Field `key` of the JSON object body, for deciding who may send it; None when the
        body is not one or lacks it (the handler's own check answers 400 after)."""
        try:
            value = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return value.get(key) if isinstance(value, dict) else None

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate (Jupyter's login, or a service account's JWT), then authorize the
        request's (org, subject, action, resource) before any handler code runs."""
        scheme, _, credential = self.request.headers.get("Authorization", "").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and looks_like_jwt(credential):
            self._authenticate_jwt(credential)
        else:
            await super().prepare()
            user = self.current_user
            if user is None or self._finished:
                return  # @web.authenticated answers 403
            self.principal = principal_of(user, self.identity_provider, self.state.owner)
        target = self.target()
        if target is not None:
            with self.api_errors():
                self.core.identity.authorize(self.org, self.principal, *target)
            for need in await self.also_needs():
                with self.api_errors():
                    self.core.identity.authorize(self.org, self.principal, *need)
        if self.request.method == "POST" and idempotency.HEADER in self.request.headers:
            await self._replay_or_claim(self.request.headers[idempotency.HEADER].strip())

    async def _replay_or_claim(self, key: str) -> None:
        """Answer a resent POST with the first answer to its key, or claim the key for this
        request (its answer is kept by flush)."""
        problem = idempotency.check_key(key)
        if problem is not None:
            raise ApiError(400, problem)
        scope = (self.org, self.principal.name if self.principal is not None else "", key)
        request = self.request
        try:
            answer = await self.state.idempotency.claim(
                scope, idempotency.fingerprint(request.method or "POST", request.uri or "", request.body))
        except idempotency.KeyReused as exc:
            raise ApiError(422, str(exc)) from None
        if answer is None:
            self._idempotency_scope = scope
            return
        self.set_status(answer.status)
        for name, value in (("Content-Type", answer.content_type), ("Location", answer.location)):
            if value is not None:
                self.set_header(name, value)
        self.set_header(idempotency.REPLAYED_HEADER, "true")
        self.finish(answer.body or None)  # a 204 has no body, not an empty one

    def flush(self, include_footers: bool = False):  # type: ignore[override]
        """Send what was written; the whole answer to a claimed idempotency key is kept (one
        sent in parts, a stream, is not)."""
        scope, self._idempotency_scope = self._idempotency_scope, None
        if scope is not None and include_footers:
            headers = self._headers
            self.state.idempotency.remember(scope, idempotency.Answer(
                self.get_status(), b"".join(self._write_buffer), headers.get("Content-Type"), headers.get("Location")))
        elif scope is not None:
            self.state.idempotency.forget(scope)
        return super().flush(include_footers)

    def on_finish(self) -> None:
        """A request that ended without an answer leaves its key to the resend."""
        if self._idempotency_scope is not None:
            self.state.idempotency.forget(self._idempotency_scope)
            self._idempotency_scope = None

    def _authenticate_jwt(self, token: str) -> None:
        if not self.check_host():
            raise web.HTTPError(403)
        identity = self.core.identity
        header = self.request.headers.get(ORG_HEADER)
        try:
            self._token_org = identity.token_org(token)
            self.principal = identity.verify_token(token, self.org if header else None)
        except DispatchError as exc:
            raise ApiError(401, str(exc)) from None
        from jupyter_server.auth import User

        # Authenticated by a credential of its own, as a token is: no XSRF cookie to check.
        self.current_user = self._jupyter_current_user = User(self.principal.name)
        self._token_authenticated = True

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`method(*args, **kwargs)` on a request thread, acting as the request's principal
        (entities record it); the core's errors become API errors."""
        loop = asyncio.get_running_loop()
        work = partial(method, *args, **kwargs)
        if self.principal is not None:
            work = partial(acting_as, self.principal.name, work)
        with self.api_errors():
            return await loop.run_in_executor(self.state.executor, work)

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
            if exc.code >= 500 and not isinstance(exc, StorageError):  # a full disk is no secret
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
        """Answer `value` as strict JSON (any parser reads it) with `status`."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(strict_dumps(value))

    def created(self, name: str, value: Any) -> None:
        """Answer 201 with `value`, and where the new entity `name` lives."""
        self.set_header("Location", self.request.path.rstrip("/") + "/" + quote(name, safe=""))
        self.reply(value, 201)

    def no_content(self) -> None:
        """Answer 204 (a delete)."""
        self.set_status(204)
        self.finish()

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
        # Who asks is known only once prepare() ran; a check before it (tornado's XSRF check)
        # has none yet, and asking for it then is an error of its own.
        if status_code == 403 and not getattr(self, "_jupyter_current_user", None):
            message = ("not authenticated: send the server's token (Authorization: token ...), "
                       f"or log in and send the X-XSRFToken header ({message})")
        if status_code == 401:  # set here: sending an error clears the headers set before
            self.set_header("WWW-Authenticate", 'Bearer realm="dispatch", error="invalid_token"')
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": status_code, "message": message, **extra}))

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ApiError):
            return  # an answer, not a failure: the access log already shows the status
        super().log_exception(typ, value, tb)


class NotFoundHandler(DispatchHandler):
    """Any other path under dispatch/v1/: a JSON 404, not the server's HTML page."""

    path = "(.*)"  # not a path of the document: routes.py puts it last, as a catch-all

    def target(self) -> None:
        return None  # no resource here: the answer is 404 for everyone

    @web.authenticated
    async def get(self, path: str) -> None:
        raise ApiError(404, f"no endpoint {API}/{path}; see {API}/openapi.json")

    post = put = patch = delete = get


class OpenApiHandler(DispatchHandler):
    """This API's OpenAPI document, with its server URL under the server's base URL."""

    auth_resource = "dispatch:openapi"
    path = "openapi.json"

    def target(self) -> None:
        return None  # the document is the same for everyone who may log in

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(openapi.document(self.base_url))


__all__ = ["API", "ApiError", "DispatchHandler", "DispatchState", "NotFoundHandler", "OpenApiHandler"]
