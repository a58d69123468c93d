"""CloudEvents 1.0 as plain dicts in the structured JSON form, built and checked cheaply.

An event travels through the bus, the run record and `ctx.event` as one JSON object (the
structured content mode): required attributes, optional ones, extensions and `data`. The
`cloudevents` package parses HTTP requests (structured and binary modes) into that form.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

from ..model import InvalidRequestError

SPEC_VERSION = "1.0"
REQUIRED = ("id", "source", "specversion", "type")
OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def make_event(type: str, data: Any = None, *, source: str = "dispatch", id: str | None = None,
               subject: str | None = None, time: str | None = None,
               datacontenttype: str | None = "application/json",
               extensions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A new CloudEvent (a fresh id and the current time unless given)."""
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": id or uuid.uuid4().hex,
        "source": source,
        "type": type,
        "time": time or _now(),
    }
    if datacontenttype and data is not None:
        event["datacontenttype"] = datacontenttype
    if subject is not None:
        event["subject"] = subject
    for key, value in (extensions or {}).items():
        event[key] = value
    if data is not None:
        event["data"] = data
    return validate(event)


def validate(event: Any) -> dict[str, Any]:
    """The event if it is a valid CloudEvent 1.0 in structured form; InvalidRequestError if not."""
    if not isinstance(event, dict):
        raise InvalidRequestError("a CloudEvent must be a JSON object")
    for name in REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidRequestError(f"the CloudEvent attribute {name!r} is required (a non-empty string)")
    if event["specversion"] != SPEC_VERSION:
        raise InvalidRequestError(f"unsupported CloudEvents specversion {event['specversion']!r} (only 1.0)")
    for name in event:
        if name in REQUIRED or name in OPTIONAL or name in ("data", "data_base64"):
            continue
        if not _EXTENSION_NAME.match(name):
            raise InvalidRequestError(
                f"{name!r} is not a valid CloudEvents extension name (lower-case letters and digits, "
                "at most 20)"
            )
    if "time" in event and event["time"] is not None:
        try:
            datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequestError(f"the CloudEvent time {event['time']!r} is not RFC 3339") from None
    return event


def from_http(headers: Mapping[str, str], body: bytes, *, default_source: str = "dispatch",
              default_type: str | None = None) -> dict[str, Any]:
    """The CloudEvent a request carries, in structured (`application/cloudevents+json`) or binary
    (`ce-*` headers) content mode; with `default_type`, a plain JSON body becomes an event of that
    type. InvalidRequestError when the request holds no valid event."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    if "ce-specversion" in lowered or content_type.startswith("application/cloudevents"):
        try:  # cloudevents 2 keeps the 1.x API under cloudevents.v1
            from cloudevents.v1.exceptions import GenericException
            from cloudevents.v1.http import from_http as parse
        except ImportError:
            from cloudevents.exceptions import GenericException
            from cloudevents.http import from_http as parse

        try:
            parsed = parse(dict(headers), body)
        except (GenericException, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"not a valid CloudEvent: {exc}") from None
        event = {k: v for k, v in parsed.get_attributes().items() if v is not None}
        if "time" in event and not isinstance(event["time"], str):
            event["time"] = str(event["time"])
        data = parsed.get_data()
        if isinstance(data, (bytes, bytearray)):
            try:
                import json

                data = json.loads(data) if data else None
            except ValueError:
                event["data_base64"] = base64.b64encode(data).decode()
                data = None
        if data is not None:
            event["data"] = data
        return validate(event)
    if default_type is None:
        raise InvalidRequestError(
            "not a CloudEvent: send application/cloudevents+json (structured) or ce-* headers (binary)"
        )
    import json

    try:
        data = json.loads(body) if body else None
    except ValueError as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None
    return make_event(default_type, data, source=default_source)


def attribute(event: Mapping[str, Any], name: str) -> Any:
    """A context attribute or extension of the event (None when absent)."""
    return event.get(name)
