"""The team store: one PostgreSQL database shared by several Dispatch servers.

    c.DispatchApp.store = "postgres"
    c.DispatchApp.plugin_options = {"postgres": {"dsn": "postgresql://dispatch@db/dispatch"}}

(or DISPATCH_STORE_URL=postgresql://..., or `dk.connect(store="postgresql://...")`).

Entities are rows with a revision (an update names the revision it read: optimistic
concurrency) scoped by organization. Run records go through this process's journal, as with
SQLite, and reach the database in batches of one statement per kind: a warm run costs one
write() here, not two round trips to the database. Other servers learn of changes by
LISTEN/NOTIFY (pg_listen.py): entity changes move `version()`, run changes reach `watch_runs`
callbacks, and a cancel is forwarded to the server running the run. Heartbeats of each server
and leases (event sources run on one server at a time) live in the database too.

Options (plugin_options["postgres"]): dsn (required), pool_size (default 8).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Callable

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from ..model import ConflictError, DispatchError, ErrorType, InvalidRequestError, NotFoundError, Run, RunStatus, dumps, now
from ..settings import Settings
from .base import Claimed, E, EntityStore, RunsCallback, run_filter
from .journal import FLUSH_INTERVAL, RunJournal
from .pg_listen import Listener
from .pg_schema import migrate, schema_version
from .sqlite import _finish_row, _run_from_row, _run_row

log = logging.getLogger(__name__)

ENTITIES, RUNS, CANCEL = "dispatch_entities", "dispatch_runs", "dispatch_cancel"

_RUN_COLUMNS = ("id, org, function, function_revision, status, queued, started, finished, cold_start, "
                "input, output, error, logs, event, http, tags, driver")
# One statement per batch: the rows travel as arrays, one per column.
_INSERT_RUNS = (
    f"INSERT INTO runs ({_RUN_COLUMNS}, host) "
    "SELECT id, org, function, function_revision, status, queued, started, finished, cold <> 0, "
    "input, output, error, logs, event, http, tags, driver, host FROM unnest("
    "%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::float8[], %s::float8[], "
    "%s::float8[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[]) AS u(id, org, function, function_revision, status, "
    "queued, started, finished, cold, input, output, error, logs, event, http, tags, driver, host) "
    "ON CONFLICT (id) DO NOTHING"  # a journal replayed after its batch was applied changes nothing
)
_FINISH_RUNS = (
    "UPDATE runs SET status=u.status, started=u.started, finished=u.finished, cold_start=u.cold <> 0, "
    "output=u.output, error=u.error, logs=u.logs, driver=u.driver, change=nextval('run_changes') FROM unnest("
    "%s::text[], %s::float8[], %s::float8[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[]) AS u(status, started, finished, cold, output, error, logs, driver, id) WHERE runs.id = u.id"
)


def dsn_of(settings: Settings) -> str:
    """The store's connection string, from plugin_options["postgres"]["dsn"]."""
    dsn = settings.options("postgres").get("dsn")
    if not dsn:
        raise InvalidRequestError('the postgres store needs plugin_options["postgres"]["dsn"] '
                                  "(or DISPATCH_STORE_URL=postgresql://...)")
    return str(dsn)


class PostgresStore(EntityStore):
    """EntityStore over a PostgreSQL database that several servers share."""

    shared = True

    def __init__(self, location: Settings | str) -> None:
        """From Settings (a server's or an embedded core's: run records go through a journal in
        its home), or from a DSN alone (a tool such as `dispatch store copy`: written at once)."""
        journal_home = None
        if isinstance(location, Settings):
            self.dsn = dsn_of(location)
            journal_home = location.home
        else:
            self.dsn = location
        options = location.options("postgres") if isinstance(location, Settings) else {}
        # One connection first, for the migrations: a database that cannot be reached is one
        # clear error at once, not a pool retrying in the background.
        try:
            first = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise InvalidRequestError(f"cannot reach the PostgreSQL store at {_safe(self.dsn)}: {exc}") from None
        with first:
            self.migrated = migrate(first, applied_by=_who())
        self._pool = ConnectionPool(self.dsn, min_size=1, max_size=int(options.get("pool_size", 8)),
                                    kwargs={"autocommit": True}, open=True, name="dispatch-store", timeout=10.0)
        self._closed = False
        self._version = 0
        self._version_lock = threading.Lock()
        self.listener = Listener(self.dsn, [ENTITIES, RUNS, CANCEL])
        self.listener.on(ENTITIES, self._entity_changed)
        self._feed: _RunFeed | None = None
        self._feed_lock = threading.Lock()
        self._journal: RunJournal | None = None
        if journal_home is not None:
            digest = hashlib.sha256(self.dsn.encode()).hexdigest()[:12]
            directory = journal_home / f"postgres-{digest}.journal"
            RunJournal.recover(directory, self._apply)
            self._journal = RunJournal(directory, self._apply)

    @property
    def schema_version(self) -> int:
        """How many migrations the database has had."""
        with self._pool.connection() as conn:
            return schema_version(conn)

    def _entity_changed(self, _payload: str | None) -> None:
        with self._version_lock:
            self._version += 1

    # ---------------------------------------------------------------- entities

    def create(self, entity: E) -> E:
        entity.revision = 1
        entity.created = entity.modified = now()
        try:
            with self._pool.connection() as conn:
                conn.execute(
                    "INSERT INTO entities (kind, org, name, id, revision, body) VALUES (%s,%s,%s,%s,%s,%s)",
                    (entity.kind, entity.org, entity.name, entity.id, 1, dumps(entity.to_dict())),
                )
        except errors.UniqueViolation:
            raise ConflictError(f"a {entity.kind} named {entity.name!r} already exists") from None
        return entity

    def update(self, entity: E) -> E:
        stale = entity.revision
        entity.revision = stale + 1
        entity.modified = now()
        with self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE entities SET revision=%s, body=%s WHERE kind=%s AND org=%s AND name=%s AND revision=%s",
                (entity.revision, dumps(entity.to_dict()), entity.kind, entity.org, entity.name, stale),
            )
        if cursor.rowcount == 0:
            entity.revision = stale
            current = self.get(type(entity), entity.org, entity.name)  # NotFoundError when gone
            raise ConflictError(
                f"{entity.kind} {entity.name!r} has changed (revision {current.revision}, the update was "
                f"based on {stale}); fetch it again and retry"
            )
        return entity

    def get(self, cls: type[E], org: str, name: str) -> E:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT body FROM entities WHERE kind=%s AND org=%s AND name=%s",
                               (cls.kind, org, name)).fetchone()
        if row is None:
            raise NotFoundError(f"no {cls.kind} named {name!r}")
        return cls.from_dict(json.loads(row[0]))

    def list(self, cls: type[E], org: str) -> list[E]:
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT body FROM entities WHERE kind=%s AND org=%s ORDER BY name",
                                (cls.kind, org)).fetchall()
        return [cls.from_dict(json.loads(body)) for (body,) in rows]

    def delete(self, cls: type[E], org: str, name: str) -> None:
        with self._pool.connection() as conn:
            cursor = conn.execute("DELETE FROM entities WHERE kind=%s AND org=%s AND name=%s",
                                  (cls.kind, org, name))
        if cursor.rowcount == 0:
            raise NotFoundError(f"no {cls.kind} named {name!r}")

    def all_entities(self, cls: type[E]) -> list[E]:
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT body FROM entities WHERE kind=%s ORDER BY org, name",
                                (cls.kind,)).fetchall()
        return [cls.from_dict(json.loads(body)) for (body,) in rows]

    def import_entities(self, rows: Iterable[tuple[str, str, str, str, int, str]]) -> int:
        batch = list(rows)
        if not batch:
            return 0
        with self._pool.connection() as conn:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO entities (kind, org, name, id, revision, body) VALUES (%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING", batch)
                return max(cursor.rowcount, 0)

    def export_entities(self) -> Iterator[tuple[str, str, str, str, int, str]]:
        with self._pool.connection() as conn:
            yield from conn.execute(
                "SELECT kind, org, name, id, revision, body FROM entities ORDER BY kind, org, name").fetchall()

    # ---------------------------------------------------------------- runs

    def add_runs(self, runs: Iterable[Run], host: str) -> None:
        rows = [_run_row(run) + (host,) for run in runs]
        if rows:
            self._write("add", rows)

    def finish_runs(self, runs: Iterable[Run]) -> None:
        rows = [_finish_row(run) for run in runs]
        if rows:
            self._write("finish", rows)

    def _write(self, kind: str, rows: list[tuple]) -> None:
        if self._journal is not None:
            self._journal.append(kind, rows)
        else:
            self._apply([(kind, rows)])

    def _flush(self) -> None:
        if self._journal is not None:
            self._journal.flush()

    def flush(self) -> None:
        self._flush()
        if self._journal is not None and self._journal.pending():
            raise DispatchError("run records could not be written to the PostgreSQL store (they are kept "
                                "in this server's journal and retried)")

    def _apply(self, entries: list[tuple[str, list[tuple]]]) -> None:
        """Write journal entries in one transaction: one statement per run of entries of a kind."""
        groups: list[tuple[str, list[tuple]]] = []
        for kind, rows in entries:
            if groups and groups[-1][0] == kind:
                groups[-1][1].extend(rows)
            else:
                groups.append((kind, list(rows)))
        with self._pool.connection() as conn:
            with conn.transaction():
                for kind, rows in groups:
                    if kind == "finish":
                        rows = list({row[-1]: row for row in rows}.values())  # one update per run
                        conn.execute(_FINISH_RUNS, [list(column) for column in zip(*rows)])
                    else:
                        conn.execute(_INSERT_RUNS, [list(column) for column in zip(*rows)])

    def get_run(self, org: str, run_id: str) -> Run:
        self._flush()
        for attempt in range(3):
            with self._pool.connection() as conn:
                row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE org=%s AND id=%s",
                                   (org, run_id)).fetchone()
            if row is not None:
                return _run_from_row(row)
            # A run another server started a moment ago may still be in its journal: it is
            # written within a flush interval, so look again before saying there is none.
            time.sleep(FLUSH_INTERVAL)
        raise NotFoundError(f"no run with id {run_id!r}")

    def run_host(self, org: str, run_id: str) -> str:
        """The server that owns the run (NotFoundError when there is none)."""
        self._flush()
        with self._pool.connection() as conn:
            row = conn.execute("SELECT host FROM runs WHERE org=%s AND id=%s", (org, run_id)).fetchone()
        if row is None:
            raise NotFoundError(f"no run with id {run_id!r}")
        return row[0]

    def list_runs(self, org: str, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        where, params = run_filter(org, function=function, status=status, since=since, before=before,
                                   limit=limit, mark="%s")
        self._flush()
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY id DESC LIMIT %s",
                params).fetchall()
        return [_run_from_row(row) for row in rows]

    def unsettled_hosts(self) -> set[str]:
        self._flush()
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT DISTINCT host FROM runs WHERE status IN ('QUEUED', 'RUNNING')").fetchall()
        return {host for (host,) in rows}

    def fail_unsettled(self, host: str, message: str) -> int:
        self._flush()
        error = json.dumps({"type": ErrorType.SYSTEM.value, "message": message, "stacktrace": ""})
        stamp = now()
        with self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status='FAILED', error=%s, finished=%s, started=coalesce(started, %s), "
                "change=nextval('run_changes') WHERE host=%s AND status IN ('QUEUED', 'RUNNING')",
                (error, stamp, stamp, host))
        return cursor.rowcount

    def export_runs(self, after: str = "", limit: int = 5000) -> list[tuple[Run, str]]:
        self._flush()
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {_RUN_COLUMNS}, host FROM runs WHERE id > %s ORDER BY id LIMIT %s",
                                (after, limit)).fetchall()
        return [(_run_from_row(row[:-1]), row[-1]) for row in rows]

    def import_runs(self, runs: list[tuple[Run, str]]) -> None:
        if runs:
            self._apply([("add", [_run_row(run) + (host,) for run, host in runs])])

    # ---------------------------------------------------------------- watching other servers

    def watch_runs(self, callback: RunsCallback, exclude_host: str = "") -> Callable[[], None]:
        with self._feed_lock:
            if self._feed is None:
                self._feed = _RunFeed(self, exclude_host)
            return self._feed.add(callback)

    def on_cancel(self, host: str, callback: Callable[[str, str], None]) -> Callable[[], None]:
        def heard(payload: str | None) -> None:
            if payload:
                message = json.loads(payload)
                if message.get("host") == host:
                    callback(message["org"], message["run"])

        return self.listener.on(CANCEL, heard)

    def request_cancel(self, host: str, org: str, run_id: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_notify(%s, %s)",
                         (CANCEL, json.dumps({"host": host, "org": org, "run": run_id})))

    # ---------------------------------------------------------------- hosts, leases, meta

    def heartbeat(self, host: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("INSERT INTO hosts (id) VALUES (%s) ON CONFLICT (id) DO UPDATE SET heartbeat=now()",
                         (host,))

    def live_hosts(self, within: float) -> set[str]:
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT id FROM hosts WHERE heartbeat > now() - %s * interval '1 second'",
                                (within,)).fetchall()
        return {host for (host,) in rows}

    def forget_host(self, host: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM hosts WHERE id=%s", (host,))

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (%s, %s, now() + %s * interval '1 second') "
                "ON CONFLICT (name) DO UPDATE SET holder=EXCLUDED.holder, expires=EXCLUDED.expires "
                "WHERE leases.holder=EXCLUDED.holder OR leases.expires < now() RETURNING holder",
                (name, holder, ttl)).fetchone()
        return row is not None

    def release_lease(self, name: str, holder: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM leases WHERE name=%s AND holder=%s", (name, holder))

    def get_meta(self, name: str) -> str | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name=%s", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str, *, only_if_absent: bool = False) -> str:
        with self._pool.connection() as conn:
            if only_if_absent:
                conn.execute("INSERT INTO meta (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING", (name, value))
            else:
                conn.execute("INSERT INTO meta (name, value) VALUES (%s, %s) "
                             "ON CONFLICT (name) DO UPDATE SET value=EXCLUDED.value", (name, value))
            row = conn.execute("SELECT value FROM meta WHERE name=%s", (name,)).fetchone()
        return row[0]

    def claim(self, scope: str, org: str, owner: str, keys: Iterable[str]) -> Claimed | None:
        wanted = sorted(set(keys))
        with self._pool.connection() as conn, conn.transaction():
            # One claimer of a scope at a time; the primary key would refuse a second holder anyway.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"claims {scope} {org}",))
            row = conn.execute("SELECT owner, key, extract(epoch FROM now() - claimed) FROM claims "
                               "WHERE scope=%s AND org=%s AND key = ANY(%s) AND owner <> %s ORDER BY key LIMIT 1",
                               (scope, org, wanted, owner)).fetchone()
            if row is not None:
                return Claimed(row[0], row[1], max(0.0, float(row[2])))
            conn.execute("DELETE FROM claims WHERE scope=%s AND org=%s AND owner=%s", (scope, org, owner))
            if wanted:
                conn.execute("INSERT INTO claims (scope, org, key, owner) "
                             "SELECT %s, %s, k, %s FROM unnest(%s::text[]) k", (scope, org, owner, wanted))
        return None

    def release_claims(self, scope: str, org: str, owner: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM claims WHERE scope=%s AND org=%s AND owner=%s", (scope, org, owner))

    def get_source_state(self, source_id: str) -> dict[str, Any]:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT value FROM source_state WHERE source=%s", (source_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def put_source_state(self, source_id: str, value: dict[str, Any]) -> None:
        with self._pool.connection() as conn:
            conn.execute("INSERT INTO source_state (source, value) VALUES (%s, %s) "
                         "ON CONFLICT (source) DO UPDATE SET value=EXCLUDED.value", (source_id, json.dumps(value)))

    # ---------------------------------------------------------------- lifecycle

    def version(self) -> int:
        return self._version

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._journal is not None:
                self._journal.close()
        finally:
            if self._feed is not None:
                self._feed.close()
            self.listener.close()
            self._pool.close()


class _RunFeed:
    """Runs changed by other servers, read after each runs notification and handed to callbacks
    on a thread of its own (the listener's thread only wakes it)."""

    def __init__(self, store: PostgresStore, exclude_host: str) -> None:
        self.store = store
        self.exclude_host = exclude_host
        self._callbacks: tuple[RunsCallback, ...] = ()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        with store._pool.connection() as conn:
            self._last = conn.execute("SELECT coalesce(max(change), 0) FROM runs").fetchone()[0]
        self._stop_listening = store.listener.on(RUNS, lambda _payload: self._wake.set())
        self._thread = threading.Thread(target=self._run, name="dispatch-pg-runs", daemon=True)
        self._thread.start()

    def add(self, callback: RunsCallback) -> Callable[[], None]:
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def stop() -> None:
            with self._lock:
                self._callbacks = tuple(c for c in self._callbacks if c is not callback)

        return stop

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(1.0)  # a second at most: a notification lost while reconnecting
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._read()
            except Exception:
                if not self._stopping:
                    log.exception("reading runs changed by other servers failed")

    def _read(self) -> None:
        while True:
            with self.store._pool.connection() as conn:
                rows = conn.execute(
                    f"SELECT {_RUN_COLUMNS}, change FROM runs WHERE change > %s AND host <> %s "
                    "ORDER BY change LIMIT 1000", (self._last, self.exclude_host)).fetchall()
            if not rows:
                return
            self._last = rows[-1][-1]
            runs = [_run_from_row(row[:-1]) for row in rows]
            for callback in self._callbacks:
                try:
                    callback(runs)
                except Exception:
                    log.exception("a watcher of runs on other servers failed")
            if len(rows) < 1000:
                return

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._stop_listening()
        self._thread.join(5)



def _who() -> str:
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def _safe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(dsn)
        parts.pop("password", None)
        return make_conninfo(**parts)
    except Exception:
        return "the configured DSN"


__all__ = ["PostgresStore", "dsn_of"]
