"""REST API v1 for events: subscriptions, dead-letters, event-sources, events and webhooks.

`POST events` takes a CloudEvent in structured (`application/cloudevents+json`) or binary
(`ce-*` headers) content mode, or `{"type", "data", "source"?, "id"?, "subject"?,
"extensions"?}` as plain JSON. `POST webhooks/{name}` is authenticated by the webhook's own
token, so services elsewhere can call it.
"""

from __future__ import annotations


from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from tornado import web

from ..events.cloudevent import from_http
from ..model import InvalidRequestError
from .base import API, ApiError, DispatchHandler


class EventsBase(DispatchHandler):
    """The handlers of the events resource."""

    auth_resource = "dispatch:events"


class SubscriptionsHandler(EventsBase):
    """List subscriptions; subscribe a function to an event type."""

    path = "subscriptions"

    async def also_needs(self) -> list[tuple[str, str]]:
        """Subscribing a function runs it whenever the event comes: invoke on it."""
        function = self.body_field("function") if self.request.method == "POST" else None
        return [("invoke", f"functions/{function}")] if isinstance(function, str) else []

    @web.authenticated
    @authorized
    async def get(self) -> None:
        items = await self.call(self.core.events.list_subscriptions, self.org)
        self.reply({"items": [s.to_dict() for s in items]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body("SubscriptionCreate")
        sub = await self.call(self.core.events.subscribe, body["function"], body["event_type"], org=self.org,
                              name=body.get("name"), filters=body.get("filters"),
                              max_attempts=body.get("max_attempts", 5), tags=body.get("tags"))
        self.created(sub.name, sub.to_dict())


class SubscriptionHandler(EventsBase):
    """One subscription; delete it."""

    path = "subscriptions/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply((await self.call(self.core.events.get_subscription, name, self.org)).to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.events.delete_subscription, name, self.org)
        self.no_content()


class DeadLettersHandler(EventsBase):
    """Events given up after their subscription's max_attempts (`?subscription=NAME`: its own)."""

    path = "dead-letters"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        subscription = self.get_query_argument("subscription", None)
        letters = await self.call(self.core.events.dead_letters, subscription, org=self.org)
        self.reply({"items": letters})


class DeadLetterReplayHandler(EventsBase):
    """Deliver a dead letter's event again: a new run, tagged as the letter's replay."""

    path = "dead-letters/{id}/replay"

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        run = await self.call(self.core.events.replay_dead_letter, id, org=self.org)
        self.reply(run.to_dict(), 202)


class EventSourcesHandler(EventsBase):
    """List event sources; create and start one (a webhook's token is shown this once)."""

    path = "event-sources"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        items = await self.call(self.core.events.list_event_sources, self.org)
        self.reply({"items": [s.public_dict() for s in items]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body("EventSourceCreate")
        source = await self.call(self.core.events.create_event_source, body["name"], body["type"], org=self.org,
                                 config=body.get("config"), secrets=body.get("secrets"), tags=body.get("tags"))
        data = source.public_dict()
        if source.type == "webhook":
            data["url"] = f"{self.base_url.rstrip('/')}/{API}/webhooks/{source.name}"
        self.created(source.name, data)


class EventSourceHandler(EventsBase):
    """One event source, with its status; stop and delete it."""

    path = "event-sources/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply((await self.call(self.core.events.get_event_source, name, self.org)).public_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.events.delete_event_source, name, self.org)
        self.no_content()


class EventsHandler(EventsBase):
    """Publish a CloudEvent: plain JSON, or structured or binary content mode."""

    path = "events"

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
            event = await self.call(self.core.events.emit, event, org=self.org)
        else:
            body = self.body("EventCreate")
            options = {k: body[k] for k in ("source", "id", "subject", "extensions") if k in body}
            event = await self.call(self.core.events.emit, body["type"], body.get("data"), org=self.org, **options)
        self.reply(event, 202)


class WebhookHandler(EventsBase):
    """POST by a service elsewhere: its token authenticates it, not a Jupyter login."""

    path = "webhooks/{name}"

    def target(self) -> None:
        return None  # the webhook's own token is its authorization

    @allow_unauthenticated
    async def post(self, name: str) -> None:
        if len(self.request.body) > self.state.max_body_size:
            raise ApiError(413, "the request body is over the limit")
        event = await self.call(self.core.events.receive, name, dict(self.request.headers), self.request.body,
                                org=self.org, authenticated=False)
        self.reply(event, 202)

    def check_xsrf_cookie(self) -> None:
        """No XSRF check: other services call this with a token and no cookie."""
        return None  # token-authenticated calls from other services carry no cookie

    def check_referer(self) -> bool:
        """Any referer: other services call this."""
        return True


HANDLERS = [SubscriptionsHandler, SubscriptionHandler, DeadLettersHandler, DeadLetterReplayHandler,
            EventSourcesHandler,
            EventSourceHandler, EventsHandler, WebhookHandler]
