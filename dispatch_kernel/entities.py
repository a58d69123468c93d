"""The entities of events, APIs and identity: Dispatch's Subscription, EventSource, Api,
Organization, ServiceAccount and Policy.

Entities like model.py's, kept apart because a notebook's first function needs none of them: a
fresh process pays for their dataclass code (~0.4 ms each) only when it uses one. Like
model.py, only the standard library is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Entity


@dataclass(repr=False, eq=False)
class Subscription(Entity):
    """Events -> a function: an event type (exact, or a dotted prefix wildcard such as `vm.*`),
    optionally narrowed by attribute filters (source, extensions), as Knative triggers are."""

    function: str = ""
    event_type: str = ""
    filters: dict[str, str] = field(default_factory=dict)  # CloudEvents attribute -> exact value
    max_attempts: int = 5  # deliveries tried before the event goes to the dead letters

    kind = "subscription"


@dataclass(repr=False, eq=False)
class EventSource(Entity):
    """A running event driver (schedule, webhook, vcenter): its configuration and secrets."""

    type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    kind = "event_source"

    def public_dict(self) -> dict[str, Any]:
        """`to_dict()` without what only the source itself may read (a webhook's token hash)."""
        data = self.to_dict()
        data["config"] = {k: v for k, v in data["config"].items() if k != "token_sha256"}
        return data


@dataclass(repr=False, eq=False)
class Api(Entity):
    """HTTP routes to a function (Dispatch's API): requests whose method, host and path match
    run the function. `paths` are Dispatch's `uris`, templates with `{param}` placeholders;
    without `hosts` they live under `/{org}/` of a gateway. `cors` is False, True (any origin)
    or {"origins", "headers", "max_age"}; `auth` is "public" or "token" (a bearer credential
    the server accepts)."""

    function: str = ""
    methods: list[str] = field(default_factory=lambda: ["GET"])
    protocols: list[str] = field(default_factory=lambda: ["http", "https"])
    hosts: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    cors: bool | dict[str, Any] = False
    auth: str = "public"
    enabled: bool = True

    kind = "api"


@dataclass(repr=False, eq=False)
class Organization(Entity):
    """A tenant: its functions, runs, secrets, events and APIs are seen by its members only.
    Organizations are stored in the pseudo-organization SYSTEM_ORG."""

    description: str = ""

    kind = "organization"


@dataclass(repr=False, eq=False)
class ServiceAccount(Entity):
    """A program's identity in an organization: it signs short-lived JWTs (RS256 or ES256,
    `iss` = "{org}/{name}") with a private key that never reaches the server; the server keeps
    only the public key (PEM) to verify them."""

    public_key: str = ""
    algorithm: str = ""  # RS256 or ES256, from the key's type
    description: str = ""

    kind = "serviceaccount"


@dataclass(repr=False, eq=False)
class Policy(Entity):
    """Who may do what: `rules` = [{"subjects", "resources", "actions"}], each a list of names
    with `*` wildcards (subjects: a user, `group:NAME`, `serviceaccount:NAME`; resources: a
    kind such as `functions`, or `functions/nightly-*`; actions: get, create, update, delete,
    invoke). An `is_global` policy (stored in SYSTEM_ORG) applies in every organization."""

    rules: list[dict[str, list[str]]] = field(default_factory=list)
    is_global: bool = False

    kind = "policy"


__all__ = ["Api", "EventSource", "Organization", "Policy", "ServiceAccount", "Subscription"]
