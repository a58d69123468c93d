"""EventBus: the plug-in interface every bus implements (entry points `dispatch_kernel.buses`).

A bus owns delivery: `publish` makes an event durable before it returns, then the bus calls the
`Deliver` callback it was started with once per matching subscription until the callback
returns (the run is recorded), retrying with backoff and giving up to the dead letters after the
subscription's `max_attempts`. A repeated event id reaches each subscription once.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

from ...entities import Subscription
from ...settings import Settings


class Delivery(NamedTuple):
    """One event for one subscription; `redelivery` says it may have been delivered before (a
    retry, or a takeover from a process that died): run `run_id` may already exist."""

    org: str
    subscription_id: str
    event: dict[str, Any]
    run_id: str
    redelivery: bool


class Deliver(Protocol):
    """Record the runs of a batch of deliveries; returns, per delivery, None when its run is
    recorded, SubscriptionGone to drop it, or another exception to retry it."""

    def __call__(self, deliveries: list[Delivery]) -> list[BaseException | None]: ...


class SubscriptionGone(Exception):
    """The subscription was deleted: drop the delivery, do not retry."""


@dataclass
class Host:
    """Who this process is, and whether another one still lives (dispatch_kernel.hosts)."""

    id: str
    is_alive: Callable[[str], bool]


def run_id_for(published: float, subscription_id: str, event_id: str) -> str:
    """The id of the run a delivery creates: the same on every retry and in every process, so
    a redelivered event is recognised, and sorted by the time the bus took the event."""
    digest = hashlib.sha256(f"{subscription_id}\0{event_id}".encode()).hexdigest()[:10]
    return f"{int(published * 1e9):016x}{digest}"


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before retry number `attempts` (1, 2, ...): exponential, capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


class EventBus(ABC):
    """Durable, at-least-once delivery of CloudEvents to subscriptions.

    Options (Settings.plugin_options[name]): retry_base and retry_max, the seconds of the
    first retry and of the longest wait between retries.
    """

    name: str = ""  # the entry point's name, under which the bus reads its options

    def __init__(self, settings: Settings, host: Host) -> None:
        self.settings = settings
        self.host = host
        options = settings.options(self.name)
        self.retry_base = float(options.get("retry_base", 0.2))
        self.retry_max = float(options.get("retry_max", 30.0))

    @abstractmethod
    def start(self, deliver: Deliver) -> None:
        """Begin delivering: events published before a restart that are still due come first."""

    @abstractmethod
    def publish(self, org: str, event: dict[str, Any], matched: list[Subscription]) -> int:
        """Store the event durably for delivery to `matched` (a bus that matches by itself may
        ignore it); returns how many new deliveries it made (0 for a repeated id), or -1 when
        the bus cannot tell."""

    def sync(self, subscriptions: list[Subscription]) -> None:
        """The current subscriptions of every organization this host serves (a bus that keeps
        per-subscription state, such as consumers, creates and removes it here)."""

    @abstractmethod
    def dead_letters(self, org: str, subscription_id: str | None = None) -> list[dict[str, Any]]:
        """Deliveries given up, oldest first: {id, subscription, event, attempts, error}; `id` is
        the run id the delivery had (run_id_for), which names the letter for a replay."""

    def claim_dead_letter(self, org: str, letter_id: str) -> dict[str, Any] | None:
        """The dead letter `letter_id`, taken for a replay (None when there is none): a bus that
        can, keeps a second replay of it from starting until settle_dead_letter. This default
        claims nothing, so a bus without it may replay a letter twice when asked twice at once."""
        return next((letter for letter in self.dead_letters(org) if letter.get("id") == letter_id), None)

    def settle_dead_letter(self, org: str, letter_id: str, replay_run_id: str | None) -> None:
        """After a claim: the letter was replayed as run `replay_run_id` (it leaves the dead
        letters), or, with None, the replay did not start (it is a dead letter again). This
        default keeps the letter listed."""

    def pending(self) -> int:
        """Deliveries not yet done (for tests and benchmarks); -1 when unknown."""
        return -1

    @abstractmethod
    def close(self) -> None:
        """Stop delivering; what is not delivered stays stored for the next start."""
