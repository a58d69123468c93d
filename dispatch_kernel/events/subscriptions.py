"""Which events a subscription takes: an exact type or a dotted prefix wildcard, plus filters."""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..entities import Subscription
from ..model import InvalidRequestError

_TYPE_PATTERN = re.compile(r"^(\*|[^*\s]+(\.\*)?)$")


def check_pattern(pattern: str) -> str:
    """The pattern if valid: `order.created`, `order.*` (any type under `order.`) or `*`."""
    if not isinstance(pattern, str) or not _TYPE_PATTERN.match(pattern):
        raise InvalidRequestError(
            f"{pattern!r} is not a valid event type pattern (an exact type such as 'order.created', "
            "a dotted prefix wildcard such as 'order.*', or '*')"
        )
    return pattern


def type_matches(pattern: str, event_type: str) -> bool:
    """True when `event_type` is `pattern` or, for `a.b.*`, starts with `a.b.`."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches(subscription: Subscription, event: Mapping[str, Any]) -> bool:
    """True when the event's type matches and every attribute filter equals the event's value."""
    if not type_matches(subscription.event_type, event.get("type", "")):
        return False
    for name, value in subscription.filters.items():
        if str(event.get(name)) != str(value):
            return False
    return True


class SubscriptionIndex:
    """Subscriptions of one organization grouped for matching: exact types by dict lookup,
    wildcards by prefix scan (few in practice)."""

    def __init__(self, subscriptions: list[Subscription]) -> None:
        self.exact: dict[str, list[Subscription]] = {}
        self.wildcards: list[Subscription] = []
        for sub in subscriptions:
            if sub.event_type == "*" or sub.event_type.endswith(".*"):
                self.wildcards.append(sub)
            else:
                self.exact.setdefault(sub.event_type, []).append(sub)

    def match(self, event: Mapping[str, Any]) -> list[Subscription]:
        found = [s for s in self.exact.get(event.get("type", ""), ()) if matches(s, event)]
        found.extend(s for s in self.wildcards if matches(s, event))
        return found
