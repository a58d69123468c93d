"""REST API v1: apis and apis/{name}, the HTTP routes to functions (served under
`{base_url}dispatch/http/` and by `dispatch gateway`)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import ApiError, DispatchHandler

_FIELDS = ("function", "methods", "paths", "hosts", "protocols", "cors", "auth", "enabled", "tags")


def _publishing(function: Any, auth: Any) -> list[tuple[str, str]]:
    """What routing the public to `function` needs: invoke on it."""
    return [("invoke", f"functions/{function}")] if auth == "public" and isinstance(function, str) else []


class ApisHandler(DispatchHandler):
    """List APIs; create one (409 when the name is taken or a route is claimed already)."""

    auth_resource = "dispatch:apis"
    path = "apis"

    async def also_needs(self) -> list[tuple[str, str]]:
        """A public route lets anyone run its function: who makes one must be allowed to
        invoke it (a token route's callers are checked at the gateway instead)."""
        if self.request.method != "POST":
            return []
        return _publishing(self.body_field("function"), self.body_field("auth") or "public")

    @web.authenticated
    @authorized
    async def get(self) -> None:
        apis = await self.call(self.core.apis.list, self.org, self.get_query_argument("function", None))
        self.reply({"items": [api.to_dict() for api in apis]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("ApiCreate")
        options = {key: spec[key] for key in _FIELDS if key in spec and key != "function"}
        api = await self.call(self.core.apis.create, spec["name"], spec["function"], org=self.org, **options)
        self.created(api.name, api.to_dict())


class ApiHandler(DispatchHandler):
    """One API: read, update (the fields given; based on its revision), delete."""

    auth_resource = "dispatch:apis"
    path = "apis/{name}"

    async def also_needs(self) -> list[tuple[str, str]]:
        """An update that opens a function to the public (a public, enabled API that was not
        so for that function before) needs invoke on it, as creating the API would."""
        if self.request.method != "PUT":
            return []
        try:
            current = await self.call(self.core.apis.get, self.path_args[0], self.org)
        except ApiError:
            return []  # the handler answers it (404)
        function = self.body_field("function") or current.function
        auth = self.body_field("auth") or current.auth
        enabled = self.body_field("enabled")
        enabled = current.enabled if enabled is None else enabled
        already = current.enabled and current.auth == "public" and current.function == function
        return [] if already or not enabled else _publishing(function, auth)

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply((await self.call(self.core.apis.get, name, self.org)).to_dict())

    @web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        spec = self.body("ApiUpdate")
        if spec.get("name", name) != name:
            raise ApiError(400, f"the body names {spec['name']!r}, the path {name!r}: rename by creating the "
                                "new name and deleting the old")
        changes = {key: spec[key] for key in _FIELDS if key in spec}
        api = await self.call(self.core.apis.update, name, org=self.org, revision=spec["revision"], **changes)
        self.reply(api.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.apis.delete, name, self.org)
        self.no_content()


HANDLERS = [ApisHandler, ApiHandler]
