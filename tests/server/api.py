"""Helpers for the server tests: every response checked against openapi.json as it arrives."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
from jupyter_server.auth import IdentityProvider, User
from jupyter_server.auth.authorizer import Authorizer
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dispatch_kernel.server import openapi

_URI = "urn:test:openapi"


def _operations() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    """(path pattern, template, path item), concrete paths before templated ones."""
    paths = openapi.spec()["paths"]
    ordered = sorted(paths, key=lambda p: ("{" in p, p))
    return [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p, paths[p]) for p in ordered]


_OPERATIONS = _operations()
_REGISTRY = Registry().with_resource(_URI, Resource.from_contents(openapi.spec(), default_specification=DRAFT202012))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = _REGISTRY.resolver().lookup(_URI + node["$ref"]).contents
    return node


def response_problems(method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """Why this response breaks the spec (empty when it conforms). `path` is under dispatch/v1/."""
    path = "/" + path.split("?")[0].strip("/")
    for pattern, template, item in _OPERATIONS:
        if pattern.match(path):
            break
    else:
        return [f"{path} is not in the spec"]
    operation = item.get(method.lower())
    if operation is None:
        return [] if status == 405 else [f"{method} {template} is not in the spec (answered {status})"]
    responses = operation["responses"]
    spec = responses.get(str(status))
    if spec is None:
        return [f"{method} {template} answered {status}, which the spec does not list"]
    spec = _resolve(spec)
    content = spec.get("content")
    if not content:
        return [] if not body else [f"{method} {template} {status} has a body the spec does not describe"]
    media = content_type.split(";")[0].strip()
    if media not in content:
        return [f"{method} {template} {status} is {media!r}, the spec says {sorted(content)}"]
    if media != "application/json":
        return []
    try:
        value = json.loads(body)
    except ValueError as exc:
        return [f"{method} {template} {status} is not JSON: {exc}"]
    schema = content[media]["schema"]
    validator = jsonschema.Draft202012Validator({"$ref": _URI + schema["$ref"]} if "$ref" in schema else schema,
                                                registry=_REGISTRY)
    return [f"{method} {template} {status}: {e.json_path}: {e.message}" for e in validator.iter_errors(value)]


class DenySecrets(Authorizer):
    """Allows everything but the secrets resource (to see the API's 403 for an authorization)."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        return resource != "dispatch:secrets"


def add(x, y):
    return x + y


ADD_SOURCE = "def add(x, y):\n    return x + y\n"
HANDLE_SOURCE = '''
def handle(ctx, payload):
    return {"hello": payload["name"]}
'''
NAME_SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


@dataclass
class TeamUser(User):
    """A user with groups, as JupyterHub's identity provider gives them."""

    groups: tuple[str, ...] = ()


class TeamIdentity(IdentityProvider):
    """Several users on one server, as behind JupyterHub: `Authorization: token user=NAME;groups=A,B`
    is that user; the server's own token is the user `owner` (c.DispatchApp.owner's default
    does not apply: this is not Jupyter's own identity provider)."""

    async def get_user(self, handler):
        header = handler.request.headers.get("Authorization", "")
        if header.startswith("token user="):
            fields = dict(part.split("=", 1) for part in header[len("token "):].split(";") if "=" in part)
            handler._token_authenticated = True
            return TeamUser(fields["user"], groups=tuple(g for g in fields.get("groups", "").split(",") if g))
        user = super().get_user(handler)
        if hasattr(user, "__await__"):
            user = await user
        if user is not None and getattr(handler, "_token_authenticated", False):
            return TeamUser("owner")
        return user


def as_user(name: str, *groups: str) -> dict[str, str]:
    """The headers of a request by `name` (TeamIdentity)."""
    return {"Authorization": f"token user={name};groups={','.join(groups)}"}
