"""REST API v1: secrets and secrets/{name} (a list never holds values; one secret does)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import DispatchHandler


class SecretsHandler(DispatchHandler):
    """List secrets (names and keys); create one."""

    auth_resource = "dispatch:secrets"
    path = "secrets"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        secrets = await self.call(self.core.secrets.list, self.org)
        self.reply({"items": [s.public_dict() for s in secrets]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("SecretCreate")
        secret = await self.call(self.core.secrets.create, spec["name"], spec["values"], org=self.org,
                                 tags=spec.get("tags"))
        self.created(secret.name, secret.public_dict())


class SecretHandler(DispatchHandler):
    """One secret with its values; delete it."""

    auth_resource = "dispatch:secrets"
    path = "secrets/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        secret = await self.call(self.core.secrets.get, name, self.org)
        self.reply({**secret.public_dict(), "values": secret.values})

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.secrets.delete, name, self.org)
        self.no_content()


HANDLERS = [SecretsHandler, SecretHandler]
