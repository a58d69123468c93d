"""The embedded default bus: events and their deliveries in one SQLite file beside the store.

`publish` commits the event and one delivery row per matching subscription in one transaction,
then hands them to this process's dispatcher thread in memory (no polling on the hot path).
The database is what survives: a delivery that was not done when its process died is taken
over by the next process that starts (its owner's host lease is free), and retries wait in the
database until they are due. A delivery's primary key (subscription, event id) makes a
repeated event id a no-op.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from typing import Any

from ...entities import Subscription
from ...model import dumps
from ...settings import Settings
from ...store.sqlite import room_for
from .base import Deliver, Delivery, EventBus, Host, SubscriptionGone, backoff, run_id_for

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    id TEXT NOT NULL,
    published REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    subscription TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    org TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    replayed_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (subscription, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries (state, owner, next_at)
    WHERE state IN ('pending', 'retry');
"""
POLL = 0.1  # seconds between looks for due retries and orphaned deliveries
PRUNE = 60.0  # seconds between removals of deliveries older than the dedupe window
BATCH = 512  # deliveries per dispatcher round


class _Item:
    __slots__ = ("subscription", "event_id", "seq", "org", "published", "event", "attempts",
                 "max_attempts", "redelivery")

    def __init__(self, subscription: str, event_id: str, seq: int, org: str, published: float,
                 event: dict[str, Any], attempts: int, max_attempts: int, redelivery: bool) -> None:
        self.subscription, self.event_id, self.seq, self.org = subscription, event_id, seq, org
        self.published, self.event, self.attempts = published, event, attempts
        self.max_attempts, self.redelivery = max_attempts, redelivery


class SqliteBus(EventBus):
    """Durable at-least-once delivery through a SQLite file (`events.db` in the home)."""

    name = "sqlite"

    def __init__(self, settings: Settings, host: Host) -> None:
        super().__init__(settings, host)
        self.path = settings.home / "events.db"
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(deliveries)")}
        if "replayed_by" not in columns:  # a file made before dead letters could be replayed
            self._db.execute("ALTER TABLE deliveries ADD COLUMN replayed_by TEXT NOT NULL DEFAULT ''")
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliver: Deliver | None = None
        options = settings.options(self.name)
        # a repeated event id is recognised this long (seconds) after its first delivery
        self.dedupe_window = float(options.get("dedupe_window", 7 * 86400))

    # ------------------------------------------------------------------ publishing

    def publish(self, org: str, event: dict[str, Any], matched: list[Subscription]) -> int:
        if not matched:
            return 0
        published = time.time()
        body = dumps(event)
        fresh: list[_Item] = []
        with self._lock, room_for(f"the event {event['id']!r}", self.path):
            db = self._db
            db.execute("BEGIN")
            try:
                seq = db.execute("INSERT INTO events (org, id, published, body) VALUES (?,?,?,?)",
                                 (org, event["id"], published, body)).lastrowid
                for sub in matched:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO deliveries (subscription, event_id, seq, org, state, "
                        "owner, max_attempts) VALUES (?,?,?,?,'pending',?,?)",
                        (sub.id, event["id"], seq, org, self.host.id, max(1, sub.max_attempts)))
                    if cursor.rowcount:
                        fresh.append(_Item(sub.id, event["id"], seq, org, published, event, 0,
                                           max(1, sub.max_attempts), False))
                if not fresh:
                    db.execute("DELETE FROM events WHERE seq=?", (seq,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    db.execute("ROLLBACK")
                raise
        if fresh:
            self._queue.extend(fresh)
            self._wake.set()
        return len(fresh)

    # ------------------------------------------------------------------ delivering

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._thread = threading.Thread(target=self._loop, name="dispatch-event-bus", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_poll = 0.0
        next_prune = time.monotonic() + PRUNE
        while not self._closing.is_set():
            clock = time.monotonic()
            if clock >= next_prune:
                next_prune = clock + PRUNE
                try:
                    self.prune()
                except Exception:
                    log.exception("the event bus could not prune old deliveries")
            if clock >= next_poll:
                try:
                    self._reclaim()
                except Exception:
                    log.exception("the event bus could not look for due deliveries")
                next_poll = clock + POLL
            batch = []
            while self._queue and len(batch) < BATCH:
                batch.append(self._queue.popleft())
            if not batch:
                self._wake.wait(max(0.0, next_poll - time.monotonic()))
                self._wake.clear()
                continue
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Item]) -> None:
        done, retry, dead = [], [], []
        try:
            outcomes = self._deliver([
                Delivery(item.org, item.subscription, item.event,
                         run_id_for(item.published, item.subscription, item.event_id), item.redelivery)
                for item in batch])
        except Exception as exc:  # the whole batch failed: retry each
            outcomes = [exc] * len(batch)
        for item, exc in zip(batch, outcomes):
            if isinstance(exc, SubscriptionGone):
                done.append(("dropped", "the subscription was deleted", item))
            elif exc is not None:
                attempts = item.attempts + 1
                message = f"{type(exc).__name__}: {exc}"
                if attempts >= item.max_attempts:
                    dead.append((attempts, message, item))
                    log.warning("event %s gave up for subscription %s after %d attempts: %s",
                                item.event_id, item.subscription, attempts, message)
                else:
                    retry.append((attempts, message, time.time() + backoff(attempts, self.retry_base,
                                                                           self.retry_max), item))
            else:
                done.append(("done", "", item))
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.executemany(
                    "UPDATE deliveries SET state=?, attempts=attempts+1, error=? "
                    "WHERE subscription=? AND event_id=?",
                    [(state, error, i.subscription, i.event_id) for state, error, i in done])
                db.executemany(
                    "UPDATE deliveries SET state='retry', attempts=?, error=?, next_at=? "
                    "WHERE subscription=? AND event_id=?",
                    [(a, e, n, i.subscription, i.event_id) for a, e, n, i in retry])
                db.executemany(
                    "UPDATE deliveries SET state='dead', attempts=?, error=? "
                    "WHERE subscription=? AND event_id=?",
                    [(a, e, i.subscription, i.event_id) for a, e, i in dead])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    db.execute("ROLLBACK")
                raise

    def _reclaim(self) -> None:
        """Queue retries that are due, and take over deliveries of processes that died."""
        with self._lock:
            db = self._db
            owners = [row[0] for row in db.execute(
                "SELECT DISTINCT owner FROM deliveries WHERE state IN ('pending', 'retry')")]
            dead_owners = [o for o in owners if o != self.host.id and not self.host.is_alive(o)]
            if dead_owners:
                db.execute("BEGIN")
                for owner in dead_owners:
                    # 'pending' rows of a dead process may have been delivered: redeliveries.
                    db.execute("UPDATE deliveries SET owner=?, state='retry', next_at=0 "
                               "WHERE owner=? AND state IN ('pending', 'retry')", (self.host.id, owner))
                db.execute("COMMIT")
                log.info("took over the undelivered events of %d ended process(es)", len(dead_owners))
            rows = db.execute(
                "SELECT d.subscription, d.event_id, d.seq, d.org, e.published, e.body, d.attempts, "
                "d.max_attempts FROM deliveries d JOIN events e ON e.seq = d.seq "
                "WHERE d.state='retry' AND d.owner=? AND d.next_at<=? ORDER BY d.seq LIMIT ?",
                (self.host.id, time.time(), BATCH * 4)).fetchall()
            if rows:
                db.execute("BEGIN")
                db.executemany("UPDATE deliveries SET state='pending' WHERE subscription=? AND event_id=?",
                               [(r[0], r[1]) for r in rows])
                db.execute("COMMIT")
        for sub, event_id, seq, org, published, body, attempts, max_attempts in rows:
            self._queue.append(_Item(sub, event_id, seq, org, published, json.loads(body), attempts,
                                     max_attempts, True))

    def prune(self, now: float | None = None) -> None:
        """Forget finished deliveries (and their events) older than the dedupe window; dead
        letters and open deliveries stay."""
        cutoff = (time.time() if now is None else now) - self.dedupe_window
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.execute("DELETE FROM deliveries WHERE state IN ('done', 'dropped', 'replayed') AND seq IN "
                           "(SELECT seq FROM events WHERE published < ?)", (cutoff,))
                db.execute("DELETE FROM events WHERE published < ? AND seq NOT IN "
                           "(SELECT seq FROM deliveries)", (cutoff,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ inspection

    def _letters(self, org: str, subscription_id: str | None, states: tuple[str, ...]) -> list[tuple]:
        marks = ",".join("?" * len(states))
        query = ("SELECT d.subscription, d.attempts, d.error, e.body, e.published, d.event_id, d.state, "
                 f"d.owner FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.state IN ({marks}) "
                 "AND d.org=?")
        params: list[Any] = [*states, org]
        if subscription_id is not None:
            query += " AND d.subscription=?"
            params.append(subscription_id)
        return self._db.execute(query + " ORDER BY d.seq", params).fetchall()

    @staticmethod
    def _letter(row: tuple) -> dict[str, Any]:
        sub, attempts, error, body, published, event_id = row[:6]
        return {"id": run_id_for(published, sub, event_id), "subscription": sub, "attempts": attempts,
                "error": error, "event": json.loads(body)}

    def dead_letters(self, org: str, subscription_id: str | None = None) -> list[dict[str, Any]]:
        # 'replaying': claimed by a replay that has not settled yet (or whose process died)
        with self._lock:
            rows = self._letters(org, subscription_id, ("dead", "replaying"))
        return [self._letter(row) for row in rows]

    def claim_dead_letter(self, org: str, letter_id: str) -> dict[str, Any] | None:
        with self._lock:
            for row in self._letters(org, None, ("dead", "replaying")):
                letter = self._letter(row)
                if letter["id"] != letter_id:
                    continue
                state, owner = row[6], row[7]
                if state == "replaying" and (owner == self.host.id or self.host.is_alive(owner)):
                    return None  # another replay of it is under way
                self._db.execute("UPDATE deliveries SET state='replaying', owner=? "
                                 "WHERE subscription=? AND event_id=? AND state=?",
                                 (self.host.id, row[0], row[5], state))
                return letter
        return None

    def settle_dead_letter(self, org: str, letter_id: str, replay_run_id: str | None) -> None:
        with self._lock:
            for row in self._letters(org, None, ("replaying",)):
                if self._letter(row)["id"] == letter_id:
                    self._db.execute(
                        "UPDATE deliveries SET state=?, replayed_by=? WHERE subscription=? AND event_id=?",
                        ("dead" if replay_run_id is None else "replayed", replay_run_id or "", row[0], row[5]))

    def pending(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'retry')").fetchone()[0]

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._db.close()
