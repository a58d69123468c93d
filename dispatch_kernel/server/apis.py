"""REST API v1: apis and apis/{name}, the HTTP routes to functions (served under
`{base_url}dispatch/http/` and by `dispatch gateway`)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import ApiError, DispatchHandler

_FIELDS = ("function", "methods", "paths", "hosts", "protocols", "cors", "auth", "enabled", "tags")


class ApisHandler(DispatchHandler):
    """List APIs; create one (409 when the name is taken or a route is claimed already)."""

    auth_resource = "dispatch:apis"
    path = "apis"

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
