"""The NATS JetStream bus: several Dispatch processes share one stream.

Every emitted event is published to the stream (subject `<stream>.<org>`, `Nats-Msg-Id` = the
event id, so the stream drops a repeated id within its duplicate window). Each subscription is
one durable pull consumer (`sub-<subscription id>`, starting at the subscription's creation
time); every process pulls from it, so JetStream hands each event to one process. A message is
acknowledged after its run is recorded; one that is not (the process died) is redelivered after
`ack_wait`. The run id is derived from the subscription, the event id and the stream timestamp,
and a redelivery first looks for that run: with a shared store, each subscription gets exactly
one run per event even when a process is killed mid-stream. A failed delivery is retried after
a growing delay (`nak(delay)`); after the subscription's max_attempts it is put on the
dead-letter stream and terminated.

Everything NATS runs on the events supervisor's loop (nats-py is asyncio); deliveries run in a
thread (the core blocks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from ...entities import Subscription
from ...model import dumps
from ...settings import Settings
from ..subscriptions import matches
from .base import Deliver, Delivery, EventBus, Host, SubscriptionGone, backoff, run_id_for

log = logging.getLogger(__name__)

FETCH = 256  # messages per pull


def _token(org: str) -> str:
    return org.replace(".", "%2E")


class NatsBus(EventBus):
    """Events on a NATS JetStream stream that several Dispatch processes share.

    Options (Settings.plugin_options["nats"]): url, stream, prefix, ack_wait (s),
    duplicate_window (s), connect_timeout (s), and the bus's retry_base and retry_max (s)."""

    name = "nats"

    def __init__(self, settings: Settings, host: Host) -> None:
        super().__init__(settings, host)
        options = settings.options(self.name)
        self.url = options.get("url", "nats://127.0.0.1:4222")
        self.stream = options.get("stream", "DISPATCH_EVENTS")
        # subjects are named after the stream, so streams of several set-ups never overlap
        self.prefix = options.get("prefix", self.stream)
        self.dead_stream = f"{self.stream}_DEAD"
        self.dead_prefix = f"{self.prefix}_DEAD"
        self.ack_wait = float(options.get("ack_wait", 30.0))
        self.duplicate_window = float(options.get("duplicate_window", 600.0))
        self.connect_timeout = float(options.get("connect_timeout", 5.0))
        self.supervisor = None
        self._deliver: Deliver | None = None
        self._consumers: dict[str, Subscription] = {}
        self.nc = None
        self.js = None

    def attach(self, supervisor) -> None:
        self.supervisor = supervisor
        self.supervisor.call(self._connect())

    async def _connect(self) -> None:
        import nats
        from nats.js.api import StreamConfig

        # once connected, reconnect forever; the first connection fails fast with a clear error
        try:
            self.nc = await asyncio.wait_for(
                nats.connect(self.url, name=f"dispatch-{self.host.id}", max_reconnect_attempts=-1,
                             connect_timeout=2), self.connect_timeout)
        except (asyncio.TimeoutError, OSError) as exc:
            raise ConnectionError(f"no NATS server answered at {self.url} "
                                  f"within {self.connect_timeout:g}s") from exc
        self.js = self.nc.jetstream()
        for name, subject in ((self.stream, self.prefix), (self.dead_stream, self.dead_prefix)):
            config = StreamConfig(name=name, subjects=[f"{subject}.>"], duplicate_window=self.duplicate_window)
            try:
                await self.js.add_stream(config)
            except Exception:  # it exists (perhaps made by another process): keep its config
                await self.js.stream_info(name)

    # ------------------------------------------------------------------ publishing

    def publish(self, org: str, event: dict[str, Any], matched: list[Subscription]) -> int:
        self.supervisor.call(self._publish(f"{self.prefix}.{_token(org)}", event))
        return -1

    async def _publish(self, subject: str, event: dict[str, Any]) -> None:
        await self.js.publish(subject, dumps(event).encode(), headers={"Nats-Msg-Id": event["id"]})

    # ------------------------------------------------------------------ consuming

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.sync(list(self._consumers.values()))

    def sync(self, subscriptions: list[Subscription]) -> None:
        if self.supervisor is None:
            self._consumers = {s.id: s for s in subscriptions}
            return
        wanted = {s.id: s for s in subscriptions}
        for sub_id in list(self._consumers):
            if sub_id not in wanted:
                self._consumers.pop(sub_id)
                self.supervisor.stop(f"nats:{sub_id}")
                self.supervisor.call(self._delete_consumer(f"sub-{sub_id}"))
        for sub_id, sub in wanted.items():
            self._consumers[sub_id] = sub
            if self._deliver is not None:
                self.supervisor.start(f"nats:{sub_id}", lambda sub=sub: self._consume(sub))

    async def _delete_consumer(self, durable: str) -> None:
        try:
            await self.js.delete_consumer(self.stream, durable)
        except Exception:
            pass  # already gone (another process deleted it)

    async def _consume(self, sub: Subscription) -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        created = datetime.fromtimestamp(sub.created, timezone.utc).isoformat().replace("+00:00", "Z")
        config = ConsumerConfig(
            durable_name=f"sub-{sub.id}", deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=created, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
            filter_subject=f"{self.prefix}.{_token(sub.org)}", max_ack_pending=20_000,
        )
        psub = await self.js.pull_subscribe(config.filter_subject, durable=config.durable_name,
                                            stream=self.stream, config=config)
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    messages = await psub.fetch(FETCH, timeout=1.0)
                except (NatsTimeout, asyncio.TimeoutError):
                    continue
                outcomes = await loop.run_in_executor(None, self._deliver_batch, sub, messages)
                for message, (outcome, detail) in zip(messages, outcomes):
                    if outcome == "ack":
                        await message.ack()
                    elif outcome == "retry":
                        await message.nak(delay=detail)
                    else:  # dead
                        await self.js.publish(f"{self.dead_prefix}.{_token(sub.org)}", dumps(detail).encode())
                        await message.term()
        finally:
            try:
                await psub.unsubscribe()
            except Exception:
                pass

    def _deliver_batch(self, sub: Subscription, messages: list) -> list[tuple[str, Any]]:
        outcomes: list[tuple[str, Any] | None] = [None] * len(messages)
        wanted: list[tuple[int, Delivery, int]] = []
        for index, message in enumerate(messages):
            meta = message.metadata
            try:
                event = json.loads(message.data)
            except ValueError:
                outcomes[index] = ("ack", None)  # not an event: nothing to deliver
                continue
            if not matches(sub, event):
                outcomes[index] = ("ack", None)
                continue
            published = meta.timestamp.timestamp() if isinstance(meta.timestamp, datetime) else time.time()
            attempts = meta.num_delivered
            wanted.append((index, Delivery(sub.org, sub.id, event, run_id_for(published, sub.id, event["id"]),
                                           attempts > 1), attempts))
        if wanted:
            try:
                results = self._deliver([delivery for _, delivery, _ in wanted])
            except Exception as exc:
                results = [exc] * len(wanted)
            for (index, delivery, attempts), exc in zip(wanted, results):
                if exc is None or isinstance(exc, SubscriptionGone):
                    outcomes[index] = ("ack", None)
                elif attempts >= sub.max_attempts:
                    outcomes[index] = ("dead", {"id": delivery.run_id, "subscription": sub.id, "org": sub.org,
                                                "attempts": attempts,
                                                "error": f"{type(exc).__name__}: {exc}", "event": delivery.event})
                else:
                    outcomes[index] = ("retry", backoff(attempts, self.retry_base, self.retry_max))
        return outcomes  # type: ignore[return-value]

    # ------------------------------------------------------------------ inspection

    def dead_letters(self, org: str, subscription_id: str | None = None) -> list[dict[str, Any]]:
        return self.supervisor.call(self._dead_letters(org, subscription_id))

    async def _dead_letters(self, org: str, subscription_id: str | None,
                            with_seq: bool = False) -> list[dict[str, Any]]:
        info = await self.js.stream_info(self.dead_stream)
        letters = []
        first, last = info.state.first_seq, info.state.last_seq
        for seq in range(max(first, last - 10_000 + 1), last + 1):
            try:
                message = await self.js.get_msg(self.dead_stream, seq)
            except Exception:
                continue
            letter = json.loads(message.data)
            if letter.get("org") != org:
                continue
            if subscription_id is not None and letter.get("subscription") != subscription_id:
                continue
            letter.pop("org", None)
            letter.setdefault("id", f"dead-{seq}")  # a letter kept before letters had ids
            if with_seq:
                letter["_seq"] = seq
            letters.append(letter)
        return letters

    def claim_dead_letter(self, org: str, letter_id: str) -> dict[str, Any] | None:
        # No lock across processes here: a letter asked to replay twice at once may run twice.
        letters = self.supervisor.call(self._dead_letters(org, None, with_seq=True))
        return next((letter for letter in letters if letter["id"] == letter_id), None)

    def settle_dead_letter(self, org: str, letter_id: str, replay_run_id: str | None) -> None:
        if replay_run_id is None:
            return  # it was never taken out of the stream
        letters = self.supervisor.call(self._dead_letters(org, None, with_seq=True))
        for letter in letters:
            if letter["id"] == letter_id:
                self.supervisor.call(self.js.delete_msg(self.dead_stream, letter["_seq"]))

    def close(self) -> None:
        if self.supervisor is None or self.nc is None:
            return
        for sub_id in list(self._consumers):
            self.supervisor.stop(f"nats:{sub_id}")
        try:
            self.supervisor.call(self.nc.close(), timeout=10)
        except Exception:
            log.exception("closing the NATS connection failed")
