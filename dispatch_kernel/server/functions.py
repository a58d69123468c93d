"""REST API v1: functions and functions/{name}."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..model import Function
from ..packaging.spec import deploy_arguments
from .base import ApiError, DispatchHandler


class FunctionsHandler(DispatchHandler):
    """List functions; create one from source text or a package (409 when the name is taken)."""

    auth_resource = "dispatch:functions"
    path = "functions"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        functions = await self.call(self.core.functions.list, self.org)
        self.reply({"items": [f.public_dict() for f in functions]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("FunctionCreate")
        function = await self.call(self._create, spec)
        self.created(function.name, function.public_dict())

    def _create(self, spec: dict[str, Any]) -> Function:
        source, name, options = deploy_arguments(spec)
        return self.core.functions.deploy(source, name, org=self.org, expect_revision=0, **options)


class FunctionHandler(DispatchHandler):
    """One function: read, update (based on its revision), delete."""

    auth_resource = "dispatch:functions"
    path = "functions/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        function = await self.call(self.core.functions.get, name, self.org)
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

    def _update(self, name: str, spec: dict[str, Any]) -> Function:
        current = self.core.functions.get(name, self.org)
        source, name, options = deploy_arguments({**spec, "name": name}, current)
        return self.core.functions.deploy(source, name, org=self.org, expect_revision=spec["revision"], **options)

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.functions.delete, name, self.org)
        self.no_content()


HANDLERS = [FunctionsHandler, FunctionHandler]
