"""Routes of APIs: path templates, the table a request is matched against, and where a route
answers. Only the standard library: the clients and the magics use it too.

A template is `/` followed by segments, each a literal or one `{param}` (a whole segment); a
request path matches when it has as many segments and each literal is equal (after
percent-decoding). Literal segments win over parameters, so `/users/me` answers before
`/users/{id}`. Two enabled APIs conflict when they claim the same method for the same host (or
both none) and the same template shape (`/a/{x}` and `/a/{y}` are one shape).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..entities import Api
from ..model import ConflictError, InvalidRequestError

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PROTOCOLS = ("http", "https")
MAX_TEMPLATE = 1024  # characters of a path template
MAX_PATH = 2048  # characters of a request path a gateway looks at; longer ones are refused
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f?#{}\\]")  # in a literal segment
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")

Shape = tuple  # a template's segments: a literal string, or None for a parameter


@dataclass(frozen=True)
class Template:
    """A parsed path template: its text, its shape and its parameter names (in order)."""

    text: str
    shape: Shape
    params: tuple[str, ...]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The parameters when `segments` (percent-decoded) match, else None."""
        if len(segments) != len(self.shape):
            return None
        values = []
        for literal, segment in zip(self.shape, segments):
            if literal is None:
                if not segment:
                    return None
                values.append(segment)
            elif literal != segment:
                return None
        return dict(zip(self.params, values))


class InvalidTemplateError(ConflictError):
    """A path that is not a valid template: refused with 409, as a route that clashes with
    another is (the route it asks for can never be in the table)."""


def parse_template(path: object) -> Template:
    """The template `path`; InvalidTemplateError saying what is wrong with it."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidTemplateError(f"path {path!r} must be a string that starts with '/'")
    if len(path) > MAX_TEMPLATE:
        raise InvalidTemplateError(f"path {path[:40]!r}... is longer than {MAX_TEMPLATE} characters")
    if path == "/":
        return Template(path, (), ())
    shape: list[str | None] = []
    params: list[str] = []
    for segment in path[1:].split("/"):
        whole = _PARAM.fullmatch(segment)
        if whole:
            if whole.group(1) in params:
                raise InvalidTemplateError(f"path {path!r} names the parameter {whole.group(1)!r} twice")
            params.append(whole.group(1))
            shape.append(None)
            continue
        if not segment:
            raise InvalidTemplateError(f"path {path!r} has an empty segment (no '//' and no trailing '/')")
        if segment in (".", ".."):
            raise InvalidTemplateError(f"path {path!r} has a {segment!r} segment")
        if _FORBIDDEN.search(segment):
            raise InvalidTemplateError(
                f"path {path!r}: a segment is a literal or one whole {{param}} (letters, digits, '_'), "
                f"and literals hold no spaces, control characters, '?', '#', '\\' or braces ({segment!r})")
        shape.append(segment)
    return Template(path, tuple(shape), tuple(params))


def parse_route(text: str) -> tuple[list[str], str]:
    """`"GET,POST /hello/{name}"` (or just a path, for GET) as (methods, path)."""
    words = text.split()
    if len(words) == 1:
        methods, path = ["GET"], words[0]
    elif len(words) == 2:
        methods, path = [m for m in words[0].split(",") if m], words[1]
    else:
        raise InvalidRequestError(f"a route is 'METHODS /path', e.g. 'GET,POST /hello/{{name}}' (not {text!r})")
    return check_methods(methods), parse_template(path).text


def check_methods(methods: Iterable[object]) -> list[str]:
    """HTTP methods, upper case, each once, in a stable order; InvalidRequestError for others."""
    found = []
    for method in methods:
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise InvalidRequestError(f"unknown HTTP method {method!r} (one of {', '.join(METHODS)})")
        if method.upper() not in found:
            found.append(method.upper())
    if not found:
        raise InvalidRequestError("an API needs at least one method")
    return sorted(found, key=METHODS.index)


def check_hosts(hosts: Iterable[object]) -> list[str]:
    """Host names, lower case, each once; InvalidRequestError for anything else."""
    found = []
    for host in hosts:
        if not isinstance(host, str) or not _HOST.match(host.lower()):
            raise InvalidRequestError(f"{host!r} is not a host name (no scheme, port or path)")
        if host.lower() not in found:
            found.append(host.lower())
    return found


def check_protocols(protocols: Iterable[object]) -> list[str]:
    """A non-empty subset of http and https."""
    found = sorted({str(p).lower() for p in protocols})
    if not found or any(p not in PROTOCOLS for p in found):
        raise InvalidRequestError(f"protocols must be some of {', '.join(PROTOCOLS)}, not {list(protocols)!r}")
    return found


def check_origin(origin: object) -> str:
    """`*` or an origin (scheme://host[:port], nothing more)."""
    if origin == "*":
        return origin
    parts = urlsplit(origin) if isinstance(origin, str) else None
    if (parts is None or parts.scheme not in PROTOCOLS or not parts.hostname or parts.path
            or parts.query or parts.fragment or parts.username):
        raise InvalidRequestError(f"cors origin {origin!r} must be '*' or scheme://host[:port]")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _claims(api: Api) -> set[tuple[str, str | None, Shape]]:
    hosts: list[str | None] = list(api.hosts) or [None]
    return {(method, host, parse_template(path).shape)
            for method in api.methods for host in hosts for path in api.paths}


def route_keys(api: Api) -> list[str]:
    """What an enabled API routes, as text keys (method, host, path shape) that are equal
    exactly when two APIs would conflict; none for a disabled API."""
    if not api.enabled:
        return []
    return sorted(json.dumps([method, host, list(shape)]) for method, host, shape in _claims(api))


def describe_key(key: str) -> str:
    """A route key in words: "GET /orders/{…} on host example.com"."""
    method, host, shape = json.loads(key)
    path = "/" + "/".join("{…}" if segment is None else segment for segment in shape)
    return f"{method} {path}" + (f" on host {host}" if host else "")


def check_conflicts(api: Api, others: Iterable[Api]) -> None:
    """ConflictError when the enabled `api` claims a method, host and path shape that another
    enabled API of its organization already claims."""
    if not api.enabled:
        return
    mine = _claims(api)
    for other in others:
        if other.name == api.name or not other.enabled:
            continue
        shared = mine & _claims(other)
        if shared:
            method, host, shape = sorted(shared, key=str)[0]
            path = next(p for p in api.paths if parse_template(p).shape == shape)
            where = f" on host {host}" if host else ""
            raise ConflictError(f"API {other.name!r} already routes {method} {path}{where} "
                                f"(to function {other.function!r})")


@dataclass
class Match:
    """What a request path found: the API with its parameters and template, or (api None)
    the methods the path has (405 with Allow)."""

    api: Api | None
    params: dict[str, str] = field(default_factory=dict)
    template: str = ""
    allowed: list[str] = field(default_factory=list)


class RouteTable:
    """The enabled APIs of one organization, ready to match request paths."""

    def __init__(self, apis: Iterable[Api]) -> None:
        self.apis = [api for api in apis if api.enabled]
        # (host or None, segment count) -> (template, api), literal segments first
        self._routes: dict[tuple[str | None, int], list[tuple[Template, Api]]] = {}
        for api in self.apis:
            for path in api.paths:
                template = parse_template(path)
                for host in api.hosts or [None]:
                    self._routes.setdefault((host, len(template.shape)), []).append((template, api))
        for routes in self._routes.values():
            routes.sort(key=lambda route: tuple(part is None for part in route[0].shape))
        self.hosts = {host for host, _ in self._routes if host is not None}

    def match(self, method: str, segments: list[str], host: str | None = None) -> Match | None:
        """The route for `method` and the decoded path `segments` (on `host`, for the APIs
        with hosts); None when no route has that path."""
        routes = self._routes.get((host, len(segments)))
        if not routes:
            return None
        allowed: list[str] = []
        for template, api in routes:
            params = template.match(segments)
            if params is None:
                continue
            if method in api.methods:
                return Match(api, params, template.text)
            allowed += [m for m in api.methods if m not in allowed]
        if not allowed:
            return None
        return Match(None, allowed=sorted(allowed, key=METHODS.index))

    def methods(self, segments: list[str], host: str | None = None) -> dict[str, Api]:
        """Every method the path answers, with the API that answers it (for a preflight)."""
        found: dict[str, Api] = {}
        for template, api in self._routes.get((host, len(segments)), ()):
            if template.match(segments) is not None:
                for method in api.methods:
                    found.setdefault(method, api)
        return found


def api_urls(api: Api, base: str | None) -> list[str]:
    """Where `api` answers: under `base` (a gateway's root URL, e.g.
    `http://127.0.0.1:8888/dispatch/http/`), or as `/{org}/path` templates without one. A path
    on hosts answers at the root of each host."""
    urls = []
    for path in api.paths:
        if api.hosts:
            for host in api.hosts:
                if base:
                    parts = urlsplit(base)
                    port = f":{parts.port}" if parts.port else ""
                    urls.append(f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}{path}")
                else:
                    urls.append(f"{host}{path}")
        else:
            urls.append(f"{base.rstrip('/') if base else ''}/{api.org}{path}")
    return urls


__all__ = ["MAX_PATH", "METHODS", "InvalidTemplateError", "Match", "RouteTable", "Template", "api_urls",
           "check_conflicts", "check_hosts", "check_methods", "check_origin", "check_protocols", "describe_key",
           "parse_route", "parse_template", "route_keys"]
