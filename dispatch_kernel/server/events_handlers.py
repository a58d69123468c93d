"""REST API v1 handlers for events: subscriptions, event-sources, events and webhooks.

Like handlers.py: parse, authorize, call the core in a thread, serialize; JSON request bodies
are checked against their schemas in openapi.yaml (`DispatchHandler.body`). `POST events` takes a
CloudEvent in structured (`application/cloudevents+json`) or binary (`ce-*` headers) content
mode, or `{"type", "data", "source"?, "id"?, "subject"?, "extensions"?}` as plain JSON.
`POST webhooks/{name}` is authenticated by the webhook's own token (or a Jupyter login), so
services elsewhere can call it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from tornado import web

from ..events.cloudevent import from_http
from ..model import InvalidRequestError
from .handlers import API, ApiError, DispatchHandler


def _source_dict(source: Any) -> dict[str, Any]:
    data = source.to_dict()
    data["config"] = {k: v for k, v in data["config"].items() if k != "token_sha256"}
    return data


class EventsBase(DispatchHandler):
    auth_resource = "dispatch:events"


class SubscriptionsHandler(EventsBase):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        items = await self.call(self.core.list_subscriptions, self.org)
        self.reply({"items": [s.to_dict() for s in items]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body("SubscriptionCreate")
        sub = await self.call(self.core.subscribe, body["function"], body["event_type"], org=self.org,
                              name=body.get("name"), filters=body.get("filters"),
                              max_attempts=body.get("max_attempts", 5), tags=body.get("tags"))
        self.set_header("Location", self.request.path.rstrip("/") + "/" + quote(sub.name, safe=""))
        self.reply(sub.to_dict(), 201)


class SubscriptionHandler(EventsBase):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply((await self.call(self.core.get_subscription, name, self.org)).to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.delete_subscription, name, self.org)
        self.set_status(204)
        self.finish()


class EventSourcesHandler(EventsBase):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        items = await self.call(self.core.list_event_sources, self.org)
        self.reply({"items": [_source_dict(s) for s in items]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body("EventSourceCreate")
        source = await self.call(self.core.create_event_source, body["name"], body["type"], org=self.org,
                                 config=body.get("config"), secrets=body.get("secrets"), tags=body.get("tags"))
        self.set_header("Location", self.request.path.rstrip("/") + "/" + quote(source.name, safe=""))
        data = _source_dict(source)
        if source.type == "webhook":
            data["url"] = f"{self.base_url.rstrip('/')}/{API}/webhooks/{source.name}"
        self.reply(data, 201)


class EventSourceHandler(EventsBase):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(_source_dict(await self.call(self.core.get_event_source, name, self.org)))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.delete_event_source, name, self.org)
        self.set_status(204)
        self.finish()


class EventsHandler(EventsBase):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        headers = dict(self.request.headers)
        if len(self.request.body) > self.state.max_body_size:
            raise ApiError(413, "the request body is over the limit")
        lowered = {k.lower() for k in headers}
        content_type = self.request.headers.get("Content-Type", "")
        if "ce-specversion" in lowered or content_type.startswith("application/cloudevents"):
            try:
                event = from_http(headers, self.request.body)
            except InvalidRequestError as exc:
                raise ApiError(400, str(exc)) from None
            event = await self.call(self.core.emit, event, org=self.org)
        else:
            body = self.body("EventCreate")
            options = {k: body[k] for k in ("source", "id", "subject", "extensions") if k in body}
            event = await self.call(self.core.emit, body["type"], body.get("data"), org=self.org, **options)
        self.reply(event, 202)


class WebhookHandler(EventsBase):
    """POST by a service elsewhere: its token authenticates it, not a Jupyter login."""

    @allow_unauthenticated
    async def post(self, name: str) -> None:
        if len(self.request.body) > self.state.max_body_size:
            raise ApiError(413, "the request body is over the limit")
        event = await self.call(self.core.receive, name, dict(self.request.headers), self.request.body,
                                org=self.org, authenticated=False)
        self.reply(event, 202)

    def check_xsrf_cookie(self) -> None:
        return None  # token-authenticated calls from other services carry no cookie

    def check_referer(self) -> bool:
        return True


def events_handlers() -> list[tuple[str, type, dict[str, Any]]]:
    """Routes to add before handlers.handlers()'s catch-all."""
    name = r"([^/]+)"
    return [
        (f"{API}/subscriptions/?", SubscriptionsHandler, {}),
        (f"{API}/subscriptions/{name}", SubscriptionHandler, {}),
        (f"{API}/event-sources/?", EventSourcesHandler, {}),
        (f"{API}/event-sources/{name}", EventSourceHandler, {}),
        (f"{API}/events/?", EventsHandler, {}),
        (f"{API}/webhooks/{name}", WebhookHandler, {}),
    ]


__all__ = ["events_handlers"]
