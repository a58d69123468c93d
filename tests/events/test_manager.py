"""EventManager on its own: the real SQLite store, bus and secrets, and a recorder in place of
the run manager, which shows the manager needs nothing of the core but `start_event_runs` and
`is_known`.

Absence is checked without sleeping where the bus allows it: the bus delivers in the order events
were published, from one thread, so once a later "sentinel" event has reached the recorder every
earlier delivery would have too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from dispatch_kernel.events.bus.base import Host
from dispatch_kernel.events.manager import EventManager
from dispatch_kernel.events.sources.webhook import UnauthenticatedError
from dispatch_kernel.model import InvalidRequestError, NotFoundError
from dispatch_kernel.secrets import SecretManager
from dispatch_kernel.settings import Settings
from dispatch_kernel.store.sqlite import SqliteStore

ORG = "default"
TIMEOUT = 30.0  # generous: other test runs share the two cores


class Recorder:
    """EventRuns that records every item and answers per item with `outcome(item, attempt)`
    (None: the run is recorded; an exception: the delivery is to be retried)."""

    def __init__(self, outcome: Callable[[tuple, int], Exception | None] | None = None) -> None:
        self.items: list[tuple[str, str, Any, dict[str, Any], str]] = []
        self.known: set[str] = set()
        self.asked: list[str] = []  # the run ids is_known was asked about
        self.outcome = outcome or (lambda item, attempt: None)
        self._changed = threading.Condition()

    def start_event_runs(self, items):
        results = []
        with self._changed:
            for item in items:
                attempt = sum(1 for seen in self.items if seen[4] == item[4]) + 1
                self.items.append(item)
                results.append(self.outcome(item, attempt))
            self._changed.notify_all()
        return results

    def is_known(self, run_id: str, org: str) -> bool:
        with self._changed:
            self.asked.append(run_id)
            self._changed.notify_all()
            return run_id in self.known

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} after {timeout}s; items: {self.items}")
                self._changed.wait(left)

    def wait_for_event(self, event_id: str, timeout: float = TIMEOUT) -> None:
        self.wait(lambda: any(item[3]["id"] == event_id for item in self.items), f"event {event_id}",
                  timeout)

    def of(self, event_id: str) -> list[tuple]:
        with self._changed:
            return [item for item in self.items if item[3]["id"] == event_id]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s")
        time.sleep(0.02)


def settings_for(home: Path) -> Settings:
    # short retries, so the retry and dead-letter tests take a fraction of a second
    return Settings(home=home, plugin_options={"sqlite": {"retry_base": 0.05, "retry_max": 0.2}})


class Parts:
    """What one manager is built from, and the manager (closed by the fixture)."""

    def __init__(self, home: Path, runs: Recorder, host_id: str = "first",
                 alive: Callable[[str], bool] = lambda host: True) -> None:
        self.settings = settings_for(home)
        self.store = SqliteStore(self.settings)
        self.runs = runs
        self.secrets = SecretManager(self.store, Fernet.generate_key())
        try:
            self.manager = EventManager(self.settings, self.store, runs, self.secrets, Host(host_id, alive))
        except BaseException:
            self.store.close()
            raise

    def close(self) -> None:
        try:
            self.manager.close()
        finally:
            self.store.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runs() -> Recorder:
    return Recorder()


@pytest.fixture
def parts(home: Path, runs: Recorder) -> Iterator[Parts]:
    built = Parts(home, runs)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def events(parts: Parts) -> EventManager:
    return parts.manager


def test_a_matching_event_starts_one_run_per_subscription(events, runs):
    events.subscribe("exact", "order.created", org=ORG, name="exact")
    events.subscribe("prefix", "order.*", org=ORG, name="prefix")
    events.subscribe("anything", "*", org=ORG, name="anything")
    events.subscribe("from-shop", "order.created", org=ORG, name="from-shop", filters={"source": "shop"})
    events.subscribe("other", "invoice.paid", org=ORG, name="other")

    event = events.emit("order.created", {"n": 1}, org=ORG, source="shop", id="e1")
    runs.wait(lambda: len(runs.of("e1")) == 4, "four runs of e1")

    assert event["id"] == "e1" and event["type"] == "order.created" and event["data"] == {"n": 1}
    by_function = {item[1]: item for item in runs.of("e1")}
    assert set(by_function) == {"exact", "prefix", "anything", "from-shop"}
    for function, (org, _, data, delivered, run_id) in by_function.items():
        assert org == ORG and data == {"n": 1}
        assert delivered["id"] == "e1" and delivered["source"] == "shop"
        assert run_id  # the bus's deterministic id, the same on every retry
    assert len({item[4] for item in runs.of("e1")}) == 4  # one run id per subscription


def test_events_that_match_no_type_or_filter_start_nothing(events, runs):
    events.subscribe("from-shop", "order.created", org=ORG, name="from-shop", filters={"source": "shop"})
    events.subscribe("sentinel", "sentinel", org=ORG)

    events.emit("order.cancelled", {}, org=ORG, source="shop", id="wrong-type")
    events.emit("order.created", {}, org=ORG, source="elsewhere", id="wrong-source")
    events.emit("order.created.late", {}, org=ORG, source="shop", id="longer-type")
    events.emit("sentinel", {}, org=ORG, id="sentinel")
    runs.wait_for_event("sentinel")

    assert [item[3]["id"] for item in runs.items] == ["sentinel"]


def test_each_organization_sees_only_its_own_events(events, runs):
    events.subscribe("fn", "ping", org="alpha", name="ping")
    events.subscribe("fn", "ping", org="beta", name="ping")  # the same name in another org

    events.emit("ping", {"to": "alpha"}, org="alpha", id="a1")
    runs.wait_for_event("a1")
    events.emit("ping", {"to": "beta"}, org="beta", id="b1")
    runs.wait_for_event("b1")

    assert [(item[0], item[2]) for item in runs.items] == [("alpha", {"to": "alpha"}), ("beta", {"to": "beta"})]


def test_a_repeated_event_id_is_delivered_once(events, runs):
    events.subscribe("fn", "ping", org=ORG)
    events.subscribe("sentinel", "sentinel", org=ORG)

    events.emit("ping", {"first": True}, org=ORG, id="same")
    events.emit("ping", {"first": False}, org=ORG, id="same")
    events.emit("sentinel", {}, org=ORG, id="sentinel")
    runs.wait_for_event("sentinel")

    assert [item[2] for item in runs.of("same")] == [{"first": True}]


def test_a_failing_delivery_is_retried_then_dead_lettered(home):
    runs = Recorder(lambda item, attempt: RuntimeError(f"no worker (attempt {attempt})"))
    parts = Parts(home, runs)
    try:
        events = parts.manager
        events.subscribe("fn", "ping", org=ORG, name="doomed", max_attempts=3)
        events.subscribe("fn", "other", org=ORG, name="bystander")
        events.emit("ping", {"x": 1}, org=ORG, id="p1")
        wait_until(lambda: events.dead_letters(org=ORG), "dead letter")

        [letter] = events.dead_letters(org=ORG)
        assert letter["subscription"] == "doomed"  # its name, not its id
        assert letter["attempts"] == 3
        assert letter["event"]["id"] == "p1" and letter["event"]["data"] == {"x": 1}
        assert "RuntimeError" in letter["error"] and "attempt 3" in letter["error"]
        assert events.dead_letters("doomed", org=ORG) == [letter]
        assert events.dead_letters("bystander", org=ORG) == []
        attempts = runs.of("p1")
        assert len(attempts) == 3 and len({item[4] for item in attempts}) == 1  # one run id throughout
    finally:
        parts.close()


def test_a_later_success_stops_the_retries(home):
    runs = Recorder(lambda item, attempt: RuntimeError("busy") if attempt < 3 else None)
    parts = Parts(home, runs)
    try:
        events = parts.manager
        events.subscribe("fn", "ping", org=ORG, name="patient", max_attempts=5)
        events.emit("ping", {}, org=ORG, id="p1")
        runs.wait(lambda: len(runs.of("p1")) >= 3, "third attempt")
        # once the bus has recorded the success, nothing of the delivery is left to retry
        wait_until(lambda: events.bus.pending() == 0, "the delivery done")

        assert len(runs.of("p1")) == 3
        assert events.dead_letters(org=ORG) == []
    finally:
        parts.close()


def test_a_redelivery_whose_run_is_known_is_not_started_again(home):
    runs = Recorder()

    def recorded_but_unanswered(item, attempt):
        # the run was recorded, but the answer was lost: the bus retries a run that exists
        runs.known.add(item[4])
        return ConnectionError("the answer was lost")

    runs.outcome = recorded_but_unanswered
    parts = Parts(home, runs)
    try:
        events = parts.manager
        events.subscribe("fn", "ping", org=ORG, max_attempts=5)
        events.emit("ping", {}, org=ORG, id="p1")
        runs.wait(lambda: bool(runs.asked), "is_known asked of the redelivery")
        wait_until(lambda: events.bus.pending() == 0, "the delivery done")

        [started] = runs.of("p1")
        assert runs.asked == [started[4]]
        assert events.dead_letters(org=ORG) == []
    finally:
        parts.close()


def test_subscribe_refuses_bad_requests_and_stores_nothing(events):
    bad = [
        dict(function="bad name", event_type="ping"),
        dict(function="fn", event_type="ping", name="no/slashes"),
        dict(function="fn", event_type="ping", name="x" * 64),
        dict(function="fn", event_type="order.*.created"),
        dict(function="fn", event_type="order created"),
        dict(function="fn", event_type=""),
        dict(function="fn", event_type="*.created"),
    ]
    for request in bad:
        with pytest.raises(InvalidRequestError):
            events.subscribe(**request, org=ORG)
    assert events.list_subscriptions(ORG) == []


@pytest.mark.parametrize("request_", [dict(filters={"data": "x"}), dict(filters={"type": "ping"}),
                                      dict(max_attempts=0)], ids=["data", "type", "max_attempts"])
def test_subscribe_refuses_filters_on_data_or_type_and_no_attempts(events, request_):
    with pytest.raises(InvalidRequestError):
        events.subscribe("fn", "ping", org=ORG, **request_)
    assert events.list_subscriptions(ORG) == []


def test_a_schedule_source_runs_until_deleted(parts, events, runs):
    # a source may name secrets: they must exist, and are read when it starts
    parts.secrets.create("clock-key", {"k": "v"}, org=ORG)
    events.subscribe("on-tick", "schedule.tick", org=ORG)
    source = events.create_event_source("clock", "schedule", org=ORG, config={"period": "1s"},
                                        secrets=["clock-key"])
    assert source.type == "schedule" and source.secrets == ["clock-key"]

    runs.wait(lambda: len(runs.items) >= 1, "a tick")
    org, function, data, event, _ = runs.items[0]
    assert (org, function, event["type"]) == (ORG, "on-tick", "schedule.tick")
    assert data["source"] == "clock"

    events.delete_event_source("clock", org=ORG)
    deleted = time.time()
    assert events.list_event_sources(ORG) == []
    # A tick already on its way may still land; none due after the deletion may. Three periods
    # is when a source that was still running would certainly have ticked again.
    time.sleep(3.0)
    scheduled = [item[2]["scheduled"] for item in runs.items]
    assert all(_epoch(when) <= deleted for when in scheduled), (scheduled, deleted)


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_an_event_source_with_a_missing_secret_is_not_found_and_not_created(events):
    with pytest.raises(NotFoundError, match="nowhere"):
        events.create_event_source("clock", "schedule", org=ORG, config={"period": "1s"}, secrets=["nowhere"])
    assert events.list_event_sources(ORG) == []


@pytest.fixture
def hook(events) -> str:
    """A webhook source's token (shown once, at creation), and a schedule source beside it."""
    source = events.create_event_source("hook", "webhook", org=ORG, config={"event_type": "git.push"})
    events.create_event_source("clock", "schedule", org=ORG, config={"period": "1h"})
    return source.config["token"]


def test_a_webhook_request_with_its_token_emits(events, runs, hook):
    events.subscribe("on-push", "git.push", org=ORG)
    event = events.receive("hook", {"Authorization": f"Bearer {hook}", "Content-Type": "application/json"},
                           b'{"ref": "main"}', org=ORG)
    assert event["type"] == "git.push" and event["data"] == {"ref": "main"}
    runs.wait_for_event(event["id"])
    assert [item[1:3] for item in runs.items] == [("on-push", {"ref": "main"})]


def test_a_webhook_refuses_unknown_names_other_sources_and_wrong_tokens_alike(events, runs, hook):
    events.subscribe("on-any", "*", org=ORG)
    body, json_type = b'{"x": 1}', {"Content-Type": "application/json"}
    wrong = {"Authorization": "Bearer not-the-token-not-the-token", **json_type}
    shapes = set()
    for name, headers in [("nowhere", wrong), ("clock", wrong), ("hook", wrong), ("hook", json_type)]:
        with pytest.raises(UnauthenticatedError) as info:
            events.receive(name, headers, body, org=ORG)
        assert info.value.code == 401
        # one message, whichever the reason: no one learns which webhooks exist
        shapes.add(str(info.value).replace(repr(name), "<name>"))
    assert len(shapes) == 1, shapes

    with pytest.raises(NotFoundError):
        events.receive("nowhere", json_type, body, org=ORG, authenticated=True)
    events.emit("sentinel", {}, org=ORG, id="sentinel")
    runs.wait_for_event("sentinel")
    assert [item[3]["id"] for item in runs.items] == ["sentinel"]


def test_close_leaves_undelivered_events_for_the_next_manager(home):
    failing = Recorder(lambda item, attempt: RuntimeError("shutting down"))
    first = Parts(home, failing, host_id="first")
    try:
        first.manager.subscribe("fn", "ping", org=ORG, max_attempts=1000)
        first.manager.emit("ping", {"kept": True}, org=ORG, id="p1")
        failing.wait(lambda: bool(failing.items), "a first attempt")
    finally:
        first.close()

    # the first process is gone: the next one takes over what it left
    succeeding = Recorder()
    second = Parts(home, succeeding, host_id="second", alive=lambda host: host == "second")
    try:
        succeeding.wait_for_event("p1")
        [(org, function, data, event, run_id)] = succeeding.of("p1")
        assert (org, function, data) == (ORG, "fn", {"kept": True})
        assert run_id == failing.items[0][4]  # the same run, not a new one
        assert succeeding.asked == [run_id]  # a takeover is a redelivery: asked before starting
        wait_until(lambda: second.manager.bus.pending() == 0, "the delivery done")
    finally:
        second.close()
