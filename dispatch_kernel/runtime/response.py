"""Response: an HTTP answer a function shapes itself (status, headers, body) when an API route
runs it, for redirects, HTML or bytes.

It is a dict, `{"$response": {"status", "headers", "body", "base64"?}}`, so that it travels
as JSON from any worker or image like every other output; a function may return that dict
itself. Only the standard library is used: this module runs inside a function's environment.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

RESPONSE_KEY = "$response"


class Response(dict):
    """What a route answers: `Response(body, status=200, headers=None, content_type=None)`.

    A str body is sent as text (text/plain unless a Content-Type says otherwise), bytes as they
    are (application/octet-stream unless ...), anything else as JSON. A function called other
    than through a route just returns it as its output.
    """

    def __init__(self, body: Any = None, status: int = 200, headers: Mapping[str, str] | None = None, *,
                 content_type: str | None = None) -> None:
        shown = {str(key): str(value) for key, value in (headers or {}).items()}
        if content_type is not None:
            shown["Content-Type"] = content_type
        shape: dict[str, Any] = {"status": int(status), "headers": shown}
        if isinstance(body, (bytes, bytearray, memoryview)):
            shape["body"] = base64.b64encode(bytes(body)).decode("ascii")
            shape["base64"] = True
        else:
            shape["body"] = body
        super().__init__({RESPONSE_KEY: shape})

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        """A redirect to `location` (302 unless told)."""
        return cls("", status, {"Location": location})

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        """An HTML page."""
        return cls(text, status, content_type="text/html; charset=utf-8")

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self[RESPONSE_KEY]["status"]

    @property
    def headers(self) -> dict[str, str]:
        """The headers the function set."""
        return self[RESPONSE_KEY]["headers"]

    @property
    def body(self) -> Any:
        """The body: text, bytes, or a value sent as JSON."""
        shape = self[RESPONSE_KEY]
        if shape.get("base64"):
            return base64.b64decode(shape["body"])
        return shape["body"]

    def __repr__(self) -> str:
        return f"Response(status={self.status}, headers={self.headers!r}, body={self.body!r:.80})"


__all__ = ["RESPONSE_KEY", "Response"]
