"""EventManager: Dispatch's event manager. It keeps subscriptions and event sources (entities in
the store), publishes emitted events on the bus, turns each delivery into a non-blocking run of
the subscribed function, and supervises the event sources.

It is given what it needs and nothing more: the store, a way to start runs (EventRuns), a reader
of secrets (for the sources that use them) and who this process is (for the bus).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping, Protocol

from .. import plugins
from ..entities import EventSource, Subscription
from ..model import ConflictError, InvalidRequestError, NotFoundError, Run, Secret, check_name
from ..settings import Settings
from ..store.base import EntityStore
from . import cloudevent
from .bus.base import Delivery, EventBus, Host, SubscriptionGone, run_id_for
from .sources.base import EventSourceDriver, SourceContext, SourceState
from .subscriptions import SubscriptionIndex, check_pattern
from .supervisor import Supervisor

log = logging.getLogger(__name__)

REPLAY_TAG = "dispatch/replay-of"  # on a run that replays a dead letter: the letter's id
CACHE_CHECK = 0.02  # seconds between checks whether subscriptions changed in the store
RECONCILE = 1.0  # seconds between comparisons of running sources with the stored ones
# With a store that several servers share, a source runs on the server that holds its lease,
# renewed every RECONCILE: a dead server's sources move to another within SOURCE_LEASE + RECONCILE.
SOURCE_LEASE = 5.0


class EventRuns(Protocol):
    """How the event manager starts runs (the RunManager is one)."""

    def start_event_runs(self, items: list[tuple[str, str, Any, dict[str, Any], str]], *,
                         tags: dict[str, str] | None = None) -> list[Exception | None]:
        """Start non-blocking runs for (org, function, input, event, run_id) items, with `tags`
        on each; per item None once its run is recorded, else the exception that kept it from
        being."""

    def get_run(self, run_id: str, org: str) -> Run:
        """The run with that id."""

    def is_known(self, run_id: str, org: str) -> bool:
        """Whether the run is in flight here or has finished (a redelivery needs nothing)."""


class SecretReader(Protocol):
    """How the event manager reads the secrets a source uses (the SecretManager is one)."""

    def get(self, name: str, org: str) -> Secret:
        """The secret with its values."""


class EventManager:
    """Subscriptions, the bus and the event sources of one Dispatch core."""

    def __init__(self, settings: Settings, store: EntityStore, runs: EventRuns, secrets: SecretReader,
                 host: Host) -> None:
        self.settings = settings
        self.store = store
        self.runs = runs
        self.secrets = secrets
        self.supervisor = Supervisor()
        self._orgs = {settings.org}
        self._index: dict[str, tuple[int, float, SubscriptionIndex, dict[str, Subscription]]] = {}
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], str] = {}  # (org, name) -> entity id of a running source
        self._reconciling = None  # an asyncio.Lock, made on the loop
        self.host = host
        self.state = SourceState(settings.home / "event-sources.db")
        self._orgs |= self.state.orgs()
        # Checkpoints live where every server that may take a source over can read them.
        self._checkpoints = _StoreCheckpoints(store) if store.shared else self.state
        try:
            bus_class = plugins.load("bus", settings.bus)
            self.bus: EventBus = bus_class(settings, host)
            if hasattr(self.bus, "attach"):
                self.bus.attach(self.supervisor)
            self.bus.sync(self._all_subscriptions())
            self.bus.start(self._deliver)
        except BaseException:
            self.supervisor.close()
            self.state.close()
            raise
        self.supervisor.start("event-sources", self._reconcile_loop)
        self._closed = False

    # ------------------------------------------------------------------ events

    def emit(self, type: str | dict[str, Any], data: Any = None, *, org: str, source: str = "dispatch",
             id: str | None = None, subject: str | None = None,
             extensions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Publish a CloudEvent 1.0 (built from the arguments, or given whole as a dict in the
        structured form); each matching subscription gets a non-blocking run whose input is
        `data`. Returns the event."""
        event = type if isinstance(type, dict) else cloudevent.make_event(
            type, data, source=source, id=id, subject=subject, extensions=extensions)
        return self._publish(event, org)

    def _publish(self, event: dict[str, Any], org: str) -> dict[str, Any]:
        cloudevent.validate(event)
        matched = self._subscriptions(org)[0].match(event)
        self.bus.publish(org, event, matched)
        return event

    def _deliver(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(deliveries)
        items, positions = [], []
        for index, (org, subscription_id, event, run_id, redelivery) in enumerate(deliveries):
            try:
                subscription = self._subscriptions(org)[1].get(subscription_id)
                if subscription is None:
                    # maybe created a moment ago in another process: look again before dropping
                    subscription = self._subscriptions(org, fresh=True)[1].get(subscription_id)
                    if subscription is None:
                        raise SubscriptionGone(subscription_id)
                if redelivery and self._recorded(run_id, org):
                    continue
            except Exception as exc:
                results[index] = exc
                continue
            items.append((org, subscription.function, event.get("data"), event, run_id))
            positions.append(index)
        if items:
            for index, outcome in zip(positions, self.runs.start_event_runs(items)):
                results[index] = outcome
        return results

    def _recorded(self, run_id: str, org: str) -> bool:
        """Whether a redelivered event's run exists and needs nothing more. An unfinished run
        that is not this process's was left by a process that ended before running it (that is
        why the event came back): it is run again under the same id."""
        return self.runs.is_known(run_id, org)

    def dead_letters(self, subscription: str | None = None, *, org: str) -> list[dict[str, Any]]:
        """Events given up after their subscription's max_attempts: {id, subscription, event,
        attempts, error}, of one subscription (a name) or of all, oldest first."""
        sub_id = None
        if subscription is not None:
            sub_id = self.store.get(Subscription, org, subscription).id
        letters = self.bus.dead_letters(org, sub_id)
        names = {s.id: s.name for s in self._subscriptions(org)[1].values()}
        for letter in letters:
            letter["subscription"] = names.get(letter["subscription"], letter["subscription"])
        return letters

    def replay_dead_letter(self, letter_id: str, *, org: str) -> Run:
        """Deliver a dead letter's event to its subscription's function again: a new run (a new
        id, tagged REPLAY_TAG with the letter's id) that is recorded before this returns; the
        letter then leaves the dead letters. NotFoundError for an unknown letter (or one being
        replayed) or a deleted subscription; when the run cannot start (its function is still
        missing, say) the error is raised and the letter stays, to be replayed later."""
        letter = self.bus.claim_dead_letter(org, letter_id)
        if letter is None:
            raise NotFoundError(f"no dead letter with id {letter_id!r}")
        run_id = None
        try:
            subscription = self._subscriptions(org, fresh=True)[1].get(letter["subscription"])
            if subscription is None:
                raise NotFoundError(f"the subscription of dead letter {letter_id!r} was deleted")
            event = letter["event"]
            # A fresh delivery id, so that the replay is a run of its own beside the old one.
            replay_id = run_id_for(time.time(), subscription.id, f"{event['id']}\0replay\0{time.time_ns()}")
            [outcome] = self.runs.start_event_runs(
                [(org, subscription.function, event.get("data"), event, replay_id)], tags={REPLAY_TAG: letter_id})
            if outcome is not None:
                raise outcome
            run_id = replay_id
        finally:
            self.bus.settle_dead_letter(org, letter_id, run_id)
        return self.runs.get_run(run_id, org)

    # ------------------------------------------------------------------ subscriptions

    def _subscriptions(self, org: str, fresh: bool = False) -> tuple[SubscriptionIndex, dict[str, Subscription]]:
        cached = self._index.get(org)
        clock = time.monotonic()
        if cached is not None and not fresh and clock - cached[1] < CACHE_CHECK:
            return cached[2], cached[3]
        version = self.store.version()
        if cached is not None and not fresh and cached[0] == version:
            self._index[org] = (version, clock, cached[2], cached[3])
            return cached[2], cached[3]
        subs = self.store.list(Subscription, org)
        entry = (version, clock, SubscriptionIndex(subs), {s.id: s for s in subs})
        self._index[org] = entry
        return entry[2], entry[3]

    def _all_subscriptions(self) -> list[Subscription]:
        return [s for org in sorted(self._orgs) for s in self._subscriptions(org, fresh=True)[1].values()]

    def subscribe(self, function: str, event_type: str, *, org: str, name: str | None = None,
                  filters: Mapping[str, str] | None = None, max_attempts: int = 5,
                  tags: Mapping[str, str] | None = None) -> Subscription:
        """Run `function` for every event whose type matches `event_type` (exact, `prefix.*` or
        `*`) and whose attributes equal `filters`; returns the Subscription."""
        check_name("function", function)
        if name is not None:
            check_name("subscription", name)
        check_pattern(event_type)
        if int(max_attempts) < 1:
            raise InvalidRequestError("max_attempts must be at least 1")
        filters = {str(k): str(v) for k, v in (filters or {}).items()}
        for key in filters:
            if key in ("data", "type"):
                raise InvalidRequestError(f"cannot filter on {key!r} (filter attributes: source, "
                                          "subject, extensions ...)")
        self._use_org(org)
        name = name or f"{function}-{event_type.replace('*', 'any')}"[:63]
        subscription = Subscription(name=name, org=org, function=function, event_type=event_type,
                                    filters=filters, max_attempts=int(max_attempts),
                                    tags=dict(tags or {}), status="READY")
        self.store.create(subscription)
        self._subscriptions(org, fresh=True)
        self.bus.sync(self._all_subscriptions())
        return subscription

    def _use_org(self, org: str) -> None:
        if org not in self._orgs:
            self.state.add_org(org)
            self._orgs.add(org)

    def list_subscriptions(self, org: str) -> list[Subscription]:
        """Every subscription of the organization, by name."""
        return self.store.list(Subscription, org)

    def get_subscription(self, name: str, org: str) -> Subscription:
        """One subscription."""
        return self.store.get(Subscription, org, name)

    def delete_subscription(self, name: str, org: str) -> None:
        """Remove a subscription; its events stop starting runs."""
        self.store.delete(Subscription, org, name)
        self._subscriptions(org, fresh=True)
        self.bus.sync(self._all_subscriptions())

    # ------------------------------------------------------------------ sources

    def create_event_source(self, name: str, type: str, *, org: str, config: Mapping[str, Any] | None = None,
                            secrets: list[str] | None = None,
                            tags: Mapping[str, str] | None = None) -> EventSource:
        """Create and start an event source (schedule, webhook, vcenter, or a plug-in's)."""
        check_name("event source", name)
        driver: type[EventSourceDriver] = plugins.load("event source", type)
        secret_names = sorted(set(secrets or []))
        for secret in secret_names:
            self.secrets.get(secret, org)  # NotFoundError names the missing secret
        config, shown = _split_once(driver.check_config(dict(config or {}), secret_names))
        self._use_org(org)
        source = EventSource(name=name, org=org, type=type, config=config, secrets=secret_names,
                             tags=dict(tags or {}), status="CREATING")
        self.store.create(source)
        self.reconcile()
        try:
            source = self.store.get(EventSource, org, name)
        except NotFoundError:
            pass
        source.config.update(shown)  # e.g. a webhook's token: shown once, stored only hashed
        return source

    def list_event_sources(self, org: str) -> list[EventSource]:
        """Every event source of the organization, by name."""
        return self.store.list(EventSource, org)

    def get_event_source(self, name: str, org: str) -> EventSource:
        """One event source, with its status."""
        return self.store.get(EventSource, org, name)

    def delete_event_source(self, name: str, org: str) -> None:
        """Stop the source and remove it."""
        source = self.store.get(EventSource, org, name)
        self.store.delete(EventSource, org, name)
        self.reconcile()
        self.state.forget(source.id)

    def receive(self, name: str, headers: Mapping[str, str], body: bytes, *, org: str,
                authenticated: bool = False) -> dict[str, Any]:
        """A request to webhook source `name`: authenticated by its token (unless the caller was
        authenticated otherwise), turned into a CloudEvent (structured, binary, or plain JSON)
        and emitted. Returns the event.

        Without a credential, a name that is no webhook is refused exactly as a wrong token is
        (UnauthenticatedError, 401): otherwise anyone could learn which webhooks exist.
        """
        from .sources.webhook import UnauthenticatedError, WebhookSource

        try:
            source = self.store.get(EventSource, org, name)
            if source.type != "webhook":
                raise NotFoundError(f"event source {name!r} is not a webhook")
        except NotFoundError:
            if authenticated:
                raise
            raise UnauthenticatedError(WebhookSource.refusal(name)) from None
        event = WebhookSource.to_event(source, headers, body, authenticated)
        return self._publish(event, org)

    def reconcile(self) -> None:
        """Start the stored sources that are not running here and stop the deleted ones."""
        self.supervisor.call(self._reconcile())

    async def _reconcile_loop(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        seen = None
        while True:
            await self._reconcile()
            version = await loop.run_in_executor(None, self.store.version)
            if version != seen:  # subscriptions made by other processes reach the bus too
                seen = version
                await loop.run_in_executor(None, lambda: self.bus.sync(self._all_subscriptions()))
            await asyncio.sleep(RECONCILE)

    async def _reconcile(self) -> None:
        import asyncio

        if self._reconciling is None:
            self._reconciling = asyncio.Lock()
        async with self._reconciling:
            loop = asyncio.get_running_loop()
            wanted: dict[tuple[str, str], EventSource] = {}
            for org in sorted(self._orgs):
                for source in await loop.run_in_executor(None, self.store.list, EventSource, org):
                    wanted[(org, source.name)] = source
            if self.store.shared:  # one server runs each source: the one holding its lease
                wanted = {key: source for key, source in wanted.items()
                          if await loop.run_in_executor(None, self._lease, source.id)}
            for key, source_id in list(self._running.items()):
                if key not in wanted or wanted[key].id != source_id:
                    del self._running[key]
                    await self.supervisor.stop_async(_task_name(key, source_id))
            for key, source in wanted.items():
                if key not in self._running:
                    self._running[key] = source.id
                    self._launch(source)

    def _lease(self, source_id: str) -> bool:
        try:
            return self.store.acquire_lease(f"event-source:{source_id}", self.host.id, SOURCE_LEASE)
        except Exception:  # the database is away: keep what runs, start nothing
            log.exception("renewing the lease of event source %s failed", source_id)
            return any(running == source_id for running in self._running.values())

    def _release_leases(self) -> None:
        for source_id in list(self._running.values()):
            try:
                self.store.release_lease(f"event-source:{source_id}", self.host.id)
            except Exception:  # the lease expires by itself
                log.exception("releasing the lease of event source %s failed", source_id)

    def _launch(self, source: EventSource) -> None:
        task = _task_name((source.org, source.name), source.id)

        async def run() -> None:
            import asyncio

            loop = asyncio.get_running_loop()
            driver_class: type[EventSourceDriver] = plugins.load("event source", source.type)
            secrets = {}
            for secret in source.secrets:
                secrets[secret] = (await loop.run_in_executor(None, self.secrets.get, secret,
                                                              source.org)).values
            context = SourceContext(source, secrets, lambda event: self._publish(event, source.org),
                                    self._checkpoints)
            await driver_class(context).run()

        def on_status(_name: str, status: str, reason: str) -> None:
            threading.Thread(target=self._set_status, args=(source, status, reason), daemon=True).start()

        self.supervisor.start(task, run, on_status)

    def _set_status(self, source: EventSource, status: str, reason: str) -> None:
        for _ in range(5):
            try:
                current = self.store.get(EventSource, source.org, source.name)
                if current.id != source.id or (current.status == status and current.reason == reason):
                    return
                if status == "STOPPED":
                    return
                current.status, current.reason = status, reason
                self.store.update(current)
                return
            except NotFoundError:
                return
            except ConflictError:
                continue
            except Exception:  # the store closed under us: the status no longer matters
                return

    def source_restarts(self, name: str, org: str) -> int:
        """How often the source's task has been restarted after a failure (for tests)."""
        source = self.store.get(EventSource, org, name)
        return self.supervisor.restarts.get(_task_name((org, name), source.id), 0)

    def close(self) -> None:
        """Stop the sources, then the bus, then the loop; what is not delivered stays stored."""
        if self._closed:
            return
        self._closed = True
        try:
            # sources first (they emit), then the bus (it may use the loop), then the loop
            for name in self.supervisor.names():
                if name.startswith("source:") or name == "event-sources":
                    self.supervisor.stop(name)
            if self.store.shared:  # another server takes them over at once
                self._release_leases()
            self.bus.close()
        finally:
            self.supervisor.close()
            self.state.close()


class _StoreCheckpoints:
    """Sources' checkpoints kept in a shared store, so the server that takes a source over
    goes on from the last tick or event of the one before it."""

    def __init__(self, store: EntityStore) -> None:
        self.store = store

    def get(self, source_id: str) -> dict[str, Any]:
        return self.store.get_source_state(source_id) or {}

    def put(self, source_id: str, value: dict[str, Any]) -> None:
        self.store.put_source_state(source_id, value)


def _task_name(key: tuple[str, str], source_id: str) -> str:
    return f"source:{key[0]}/{key[1]}/{source_id}"


def _split_once(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configuration to store, and values shown once to the creator (keys starting with '!')."""
    stored = {k: v for k, v in config.items() if not k.startswith("!")}
    shown = {k[1:]: v for k, v in config.items() if k.startswith("!")}
    return stored, shown
