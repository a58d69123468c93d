"""From a finished run to the HTTP answer of its route.

SUCCEEDED: the output as JSON with 200, or the response the function shaped itself
(dk.Response, or the dict it is: `{"$response": {status, headers, body, base64?}}`). FAILED:
an InputError is 422 with {"code", "message"}; a timeout 504; any other failure 500 with the
run's id, and never a stack trace or the function's message: the public must not see code.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..model import ErrorType, Run, RunStatus, strict_dumps
from ..runtime.response import RESPONSE_KEY

JSON = "application/json"
RUN_HEADER = "X-Dispatch-Run"  # every answer that comes from a run names it
# Headers the gateway writes itself: a function that sets them would break the connection.
_OWN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
                          "trailer", "te"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass
class Reply:
    """An HTTP answer: status, headers (a name may repeat) and body bytes."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def error_reply(status: int, message: str, **extra: Any) -> Reply:
    """{"code", "message", ...} with `status`."""
    return Reply(status, [("Content-Type", JSON)], json.dumps({"code": status, "message": message, **extra}).encode())


def run_reply(run: Run) -> Reply:
    """The answer for a finished run."""
    reply = _outcome(run)
    reply.headers.append((RUN_HEADER, run.id))
    return reply


def _outcome(run: Run) -> Reply:
    if run.status == RunStatus.SUCCEEDED:
        output = run.output
        if isinstance(output, dict) and len(output) == 1 and RESPONSE_KEY in output:
            shaped = _shaped(output[RESPONSE_KEY])
            if shaped is not None:
                return shaped
            return error_reply(500, f"the function returned a response that is not valid; its run is {run.id}",
                               run=run.id)
        return Reply(200, [("Content-Type", JSON)], strict_dumps(output).encode())
    error = run.error
    if error is not None and error.type == ErrorType.INPUT.value:
        return error_reply(422, error.message, run=run.id)
    if error is not None and error.type == ErrorType.SYSTEM.value and "timed out" in error.message:
        return error_reply(504, f"the function did not answer in time; its run is {run.id}", run=run.id)
    return error_reply(500, f"the function failed; its run is {run.id}", run=run.id)


def _shaped(shape: Any) -> Reply | None:
    """The response a function shaped, or None when it is not a valid one."""
    if not isinstance(shape, dict):
        return None
    status = shape.get("status", 200)
    headers = shape.get("headers") or {}
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        return None
    if not isinstance(headers, dict):
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name) or not isinstance(value, (str, int, float)):
            return None
        value = str(value)
        if any(c in value for c in "\r\n\x00"):
            return None
        if name.lower() not in _OWN_HEADERS:
            pairs.append((name, value))
    named = {name.lower() for name, _ in pairs}
    body = shape.get("body")
    if shape.get("base64"):
        if not isinstance(body, str):
            return None
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
        default = "application/octet-stream"
    elif body is None:
        data, default = b"", None
    elif isinstance(body, str):
        data, default = body.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        data, default = strict_dumps(body).encode(), JSON
    if default is not None and "content-type" not in named:
        pairs.append(("Content-Type", default))
    if status in (204, 304):
        data = b""
    return Reply(status, pairs, data)


__all__ = ["JSON", "RUN_HEADER", "Reply", "error_reply", "run_reply"]
