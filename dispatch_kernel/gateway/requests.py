"""From an HTTP request to what a function gets: its input and `ctx.http`.

As Dispatch did, and as users expect today: the path's parameters and, for GET and DELETE, the
query string make the input object; a JSON body (`application/json`, `*+json`) is the input
(an object gets the path's parameters too); a form (urlencoded or multipart) is an object whose
files are `{filename, content_type, size, data}` with base64 data; `text/*` is a string; any
other type is refused (415). Authorization and Cookie never reach the function or the run
record.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from .routes import MAX_PATH

# Never given to a function nor stored in its run record: credentials.
HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
QUERY_INPUT_METHODS = frozenset({"GET", "DELETE", "HEAD"})
MAX_FIELDS = 1000  # fields of a query string or form


class GatewayError(Exception):
    """A request the gateway answers itself with `status` and {"code", "message"}."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class Request:
    """What a gateway needs of one HTTP request, whatever server received it."""

    method: str
    path: str  # below the gateway's root, as sent (percent-encoded), without the query
    query: str
    headers: Mapping[str, str]  # case-insensitive (tornado's HTTPHeaders)
    body: bytes
    host: str  # the Host header's name, lower case, without the port
    protocol: str  # http or https
    client: str  # the caller's address


def segments(path: str) -> list[str]:
    """The percent-decoded segments of a request path ("a/b%2Fc" -> ["a", "b/c"]); a
    GatewayError (400) for a path no route may have: too long, a NUL, '.' or '..', or bytes
    that are not UTF-8."""
    if len(path) > MAX_PATH:
        raise GatewayError(400, f"the path is longer than {MAX_PATH} characters")
    path = path.strip("/") if path != "/" else ""
    if not path:
        return []
    parts = []
    for raw in path.split("/"):
        try:
            part = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise GatewayError(400, "the path is not UTF-8") from None
        if part in (".", "..") or "\x00" in part:
            raise GatewayError(400, "the path has a '.', '..' or NUL segment")
        parts.append(part)
    return parts


def _flat(values: Mapping[str, list[Any]]) -> dict[str, Any]:
    """A field given once as its value, more often as the list of its values."""
    return {key: items[0] if len(items) == 1 else list(items) for key, items in values.items()}


def query_values(query: str) -> dict[str, Any]:
    """The query string as an object (a repeated field as a list)."""
    if not query:
        return {}
    try:
        return _flat(parse_qs(query, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict"))
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "the query string is malformed (or has too many fields)") from None


def http_record(request: Request, *, path: list[str], api: str, route: str, params: dict[str, str],
                query: dict[str, Any]) -> dict[str, Any]:
    """ctx.http and the run's `http`: the request without its body and credentials."""
    headers: dict[str, str] = {}
    for name, value in request.headers.get_all() if hasattr(request.headers, "get_all") else request.headers.items():
        key = name.lower()
        if key in HIDDEN_HEADERS:
            continue
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return {"method": request.method, "path": "/" + "/".join(path), "route": route,
            "api": api, "params": params, "query": query, "headers": headers, "host": request.host,
            "protocol": request.protocol, "client": request.client}


def function_input(request: Request, params: dict[str, str], query: dict[str, Any], limit: int) -> Any:
    """The input a route's function gets; GatewayError for a body that is too large (413), of
    a type no function takes (415), or malformed (400)."""
    body = request.body
    if len(body) > limit:
        raise GatewayError(413, f"the request body is {len(body):,} bytes, over the limit of {limit:,}")
    fields: dict[str, Any] = dict(query) if request.method in QUERY_INPUT_METHODS else {}
    if not body:
        return {**fields, **params}
    content_type = request.headers.get("Content-Type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GatewayError(400, f"the body is not valid JSON: {exc}") from None
        return {**fields, **value, **params} if isinstance(value, dict) else value
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {**fields, **_form(content_type, body, request.headers), **params}
    if media.startswith("text/"):
        charset = _charset(content_type)
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise GatewayError(400, f"the body is not text in {charset}") from None
    raise GatewayError(415, f"a route takes JSON, a form or text, not {media or 'an untyped body'}")


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def _form(content_type: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """A urlencoded or multipart form as an object; files as {filename, content_type, size,
    data (base64)}."""
    from tornado.httputil import HTTPInputError, parse_body_arguments

    arguments: dict[str, list[bytes]] = {}
    files: dict[str, list[Any]] = {}
    try:
        parse_body_arguments(content_type, body, arguments, files, headers)  # type: ignore[arg-type]
    except HTTPInputError as exc:
        raise GatewayError(400, f"the form is malformed: {exc}") from None
    if content_type.lower().startswith("multipart/") and not arguments and not files:
        raise GatewayError(400, "the multipart form has no parts (is its boundary right?)")
    values: dict[str, list[Any]] = {}
    for name, items in arguments.items():
        for item in items:
            try:
                values.setdefault(name, []).append(item.decode("utf-8"))
            except UnicodeDecodeError:
                raise GatewayError(400, f"form field {name!r} is not UTF-8 text") from None
    for name, uploads in files.items():
        for upload in uploads:
            values.setdefault(name, []).append({
                "filename": upload.filename, "content_type": upload.content_type, "size": len(upload.body),
                "data": base64.b64encode(upload.body).decode("ascii")})
    return _flat(values)


__all__ = ["GatewayError", "HIDDEN_HEADERS", "Request", "function_input", "http_record", "query_values",
           "segments"]
