"""The embedded default store: one SQLite file in WAL mode.

One connection, guarded by a lock, serves every thread of the process: SQLite serializes
writers anyway, and a short critical section beats a connection per thread on a hot path.
Other processes may open the same file; `version()` tells when they have written.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..model import (
    ConflictError,
    StorageError,
    Entity,
    ErrorType,
    NotFoundError,
    Run,
    RunFailure,
    RunStatus,
    dumps,
    now,
)
from ..settings import Settings
from .base import Claimed, E, EntityStore, run_filter
from .journal import RunJournal

# Each entry moves the schema one version up; PRAGMA user_version records how far a file is.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE entities (
        kind TEXT NOT NULL,
        org TEXT NOT NULL,
        name TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        revision INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, org, name)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        function TEXT NOT NULL,
        function_revision INTEGER NOT NULL,
        status TEXT NOT NULL,
        host TEXT NOT NULL,
        queued REAL NOT NULL,
        started REAL,
        finished REAL,
        cold_start INTEGER NOT NULL DEFAULT 0,
        input TEXT,
        output TEXT,
        error TEXT,
        logs TEXT,
        event TEXT,
        http TEXT,
        tags TEXT
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_function ON runs (org, function, id);
    CREATE INDEX runs_unsettled ON runs (host) WHERE status IN ('QUEUED', 'RUNNING');
    """,
    # 2: which of a function's drivers ran the run (a function may have several)
    """
    ALTER TABLE runs ADD COLUMN driver TEXT;
    """,
    # 3: values kept for Dispatch itself (the secret key's check value)
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 4: keys unique across processes (an API's routes), each held by one owner
    """
    CREATE TABLE claims (scope TEXT NOT NULL, org TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL,
                         claimed REAL NOT NULL, PRIMARY KEY (scope, org, key));
    CREATE INDEX claims_by_owner ON claims (scope, org, owner);
    """,
]

_RUN_COLUMNS = (
    "id, org, function, function_revision, status, queued, started, finished, cold_start, "
    "input, output, error, logs, event, http, tags, driver"
)
# OR IGNORE: replaying a journal whose batch was applied before its process died is harmless.
_INSERT_RUN = f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS}, host) VALUES ({','.join('?' * 18)})"
_FINISH_RUN = (
    "UPDATE runs SET status=?, started=?, finished=?, cold_start=?, output=?, error=?, logs=?, driver=? "
    "WHERE id=?"
)
_STATEMENTS = {"add": _INSERT_RUN, "finish": _FINISH_RUN}
_FINISH_ID = 8  # where the run's id is in a _finish_row: after the seven fields and the driver
_EMPTY_LOGS = '{"stdout":"","stderr":""}'
_CHECKPOINT_INTERVAL = 0.5  # seconds between background WAL checkpoints


def is_full(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed for want of room (SQLITE_FULL: the disk, or a quota)."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


@contextmanager
def room_for(what: str, path: Path) -> Iterator[None]:
    """Turn SQLite's "database or disk is full" into a StorageError that says what was not
    stored and where (SQLite rolls the statement back: nothing half-written stays)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if is_full(exc):
            raise StorageError(f"could not store {what}: the disk holding {path} is full; nothing was "
                               "changed, and what was stored before is kept") from None
        raise


class SqliteStore(EntityStore):
    """EntityStore over a single SQLite file (WAL, migrations, optimistic concurrency)."""

    def __init__(self, location: Settings | str | Path) -> None:
        if isinstance(location, Settings):
            location = location.home / "dispatch.db"
        self.path = Path(location)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit mode: every statement or explicit BEGIN..COMMIT is its own transaction.
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode; only power loss can drop
        # the last commits, and it keeps a commit to a few microseconds.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        # A checkpoint fsyncs; doing it on a thread of its own keeps it off the run path.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True,
                                              name="dispatch-sqlite-checkpoint")
        self._checkpointer.start()
        journals = self.path.with_name(self.path.name + ".journal")
        RunJournal.recover(journals, self._apply)
        self._journal = RunJournal(journals, self._apply)

    @property
    def schema_version(self) -> int:
        """How many migrations this file has had."""
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    self._db.execute("ROLLBACK")
                raise

    # ---------------------------------------------------------------- entities

    def create(self, entity: E) -> E:
        entity.revision = 1
        entity.created = entity.modified = now()
        with self._lock, room_for(f"the {entity.kind} {entity.name!r}", self.path):
            try:
                self._db.execute(
                    "INSERT INTO entities (kind, org, name, id, revision, body) VALUES (?,?,?,?,?,?)",
                    (entity.kind, entity.org, entity.name, entity.id, 1, dumps(entity.to_dict())),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"a {entity.kind} named {entity.name!r} already exists") from None
        return entity

    def update(self, entity: E) -> E:
        stale = entity.revision
        entity.revision = stale + 1
        entity.modified = now()
        with self._lock, room_for(f"the {entity.kind} {entity.name!r}", self.path):
            cursor = self._db.execute(
                "UPDATE entities SET revision=?, body=? WHERE kind=? AND org=? AND name=? AND revision=?",
                (entity.revision, dumps(entity.to_dict()), entity.kind, entity.org, entity.name, stale),
            )
        if cursor.rowcount == 0:
            entity.revision = stale
            self._raise_missing_or_stale(type(entity), entity.org, entity.name, stale)
        return entity

    def _raise_missing_or_stale(self, cls: type[Entity], org: str, name: str, revision: int) -> None:
        current = self.get(cls, org, name)  # raises NotFoundError when it is gone
        raise ConflictError(
            f"{cls.kind} {name!r} has changed (revision {current.revision}, the update was "
            f"based on {revision}); fetch it again and retry"
        )

    def get(self, cls: type[E], org: str, name: str) -> E:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM entities WHERE kind=? AND org=? AND name=?", (cls.kind, org, name)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no {cls.kind} named {name!r}")
        return cls.from_dict(json.loads(row[0]))

    def list(self, cls: type[E], org: str) -> list[E]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM entities WHERE kind=? AND org=? ORDER BY name", (cls.kind, org)
            ).fetchall()
        return [cls.from_dict(json.loads(body)) for (body,) in rows]

    def delete(self, cls: type[E], org: str, name: str) -> None:
        with self._lock, room_for(f"the deletion of {cls.kind} {name!r}", self.path):
            cursor = self._db.execute(
                "DELETE FROM entities WHERE kind=? AND org=? AND name=?", (cls.kind, org, name)
            )
        if cursor.rowcount == 0:
            raise NotFoundError(f"no {cls.kind} named {name!r}")

    # ---------------------------------------------------------------- runs

    def add_runs(self, runs: Iterable[Run], host: str) -> None:
        rows = [_run_row(run) + (host,) for run in runs]
        if rows:
            self._journal.append("add", rows)

    def finish_runs(self, runs: Iterable[Run]) -> None:
        rows = [_finish_row(run) for run in runs]
        if rows:  # kept on a full disk: the run was recorded, its end will be once there is room
            self._journal.append("finish", rows, keep=True)

    def _apply(self, entries: list[tuple[str, list[tuple]]]) -> None:
        """Write journal entries to the database in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for kind, rows in entries:
                    self._db.executemany(_STATEMENTS[kind], rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    self._db.execute("ROLLBACK")
                raise

    def get_run(self, org: str, run_id: str) -> Run:
        self._journal.flush()
        with self._lock:
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE org=? AND id=?", (org, run_id)
            ).fetchone()
        if row is None:
            row = self._unapplied_run(run_id)
        elif row[4] in ("QUEUED", "RUNNING"):  # its end may wait in the journal (a full disk)
            row = self._with_unapplied_end(row)
        if row is None or row[1] != org:
            raise NotFoundError(f"no run with id {run_id!r}")
        return _run_from_row(row)

    def _unapplied_run(self, run_id: str) -> tuple | None:
        """A run the journal holds but the database does not yet (it could not be written: a
        full disk), with its end if that is recorded too."""
        added = self._journal.find("add", 0, run_id)
        if not added:
            return None
        return self._with_unapplied_end(added[-1][:-1])  # without the host

    def _with_unapplied_end(self, row: tuple) -> tuple:
        finishes = self._journal.find("finish", _FINISH_ID, row[0])
        if not finishes:
            return row
        changed = list(row)
        (changed[4], changed[6], changed[7], changed[8], changed[10], changed[11], changed[12],
         changed[16]) = finishes[-1][:_FINISH_ID]
        return tuple(changed)

    def list_runs(self, org: str, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        where, params = run_filter(org, function=function, status=status, since=since, before=before,
                                   limit=limit, mark="?")
        self._journal.flush()
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} "
                "ORDER BY id DESC LIMIT ?",
                params,
            ).fetchall()
        return [_run_from_row(row) for row in rows]

    def unsettled_hosts(self) -> set[str]:
        self._journal.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT host FROM runs WHERE status IN ('QUEUED', 'RUNNING')"
            ).fetchall()
        return {host for (host,) in rows}

    def fail_unsettled(self, host: str, message: str) -> int:
        self._journal.flush()
        error = json.dumps({"type": ErrorType.SYSTEM.value, "message": message, "stacktrace": ""})
        stamp = now()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE runs SET status='FAILED', error=?, finished=?, started=coalesce(started, ?) "
                "WHERE host=? AND status IN ('QUEUED', 'RUNNING')",
                (error, stamp, stamp, host),
            )
        return cursor.rowcount

    # ---------------------------------------------------------------- moving, meta

    def export_entities(self) -> Iterator[tuple[str, str, str, str, int, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, org, name, id, revision, body FROM entities ORDER BY kind, org, name").fetchall()
        yield from rows

    def import_entities(self, rows: Iterable[tuple[str, str, str, str, int, str]]) -> int:
        batch = list(rows)
        with self._lock:
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO entities (kind, org, name, id, revision, body) "
                                 "VALUES (?,?,?,?,?,?)", batch)
            return self._db.total_changes - before

    def export_runs(self, after: str = "", limit: int = 5000) -> list[tuple[Run, str]]:
        self._journal.flush()
        with self._lock:
            rows = self._db.execute(f"SELECT {_RUN_COLUMNS}, host FROM runs WHERE id > ? ORDER BY id LIMIT ?",
                                    (after, limit)).fetchall()
        return [(_run_from_row(row[:-1]), row[-1]) for row in rows]

    def import_runs(self, runs: list[tuple[Run, str]]) -> None:
        if runs:
            self._apply([("add", [_run_row(run) + (host,) for run, host in runs])])

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str, *, only_if_absent: bool = False) -> str:
        verb = "INSERT OR IGNORE" if only_if_absent else "INSERT OR REPLACE"
        with self._lock:
            self._db.execute(f"{verb} INTO meta (name, value) VALUES (?, ?)", (name, value))
            return self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()[0]

    def claim(self, scope: str, org: str, owner: str, keys: Iterable[str]) -> Claimed | None:
        wanted = sorted(set(keys))
        with self._lock, room_for(f"the claims of {owner!r}", self.path):
            self._db.execute("BEGIN IMMEDIATE")  # the write lock: other processes claim after
            try:
                for key in wanted:
                    row = self._db.execute("SELECT owner, claimed FROM claims WHERE scope=? AND org=? AND key=? "
                                           "AND owner<>?", (scope, org, key, owner)).fetchone()
                    if row is not None:
                        self._db.execute("ROLLBACK")
                        return Claimed(row[0], key, max(0.0, time.time() - row[1]))
                self._db.execute("DELETE FROM claims WHERE scope=? AND org=? AND owner=?", (scope, org, owner))
                stamp = time.time()
                self._db.executemany("INSERT INTO claims (scope, org, key, owner, claimed) VALUES (?,?,?,?,?)",
                                     [(scope, org, key, owner, stamp) for key in wanted])
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return None

    def release_claims(self, scope: str, org: str, owner: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE scope=? AND org=? AND owner=?", (scope, org, owner))

    def _checkpoint_loop(self) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        try:
            while not self._closing.wait(_CHECKPOINT_INTERVAL):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # busy or closing: the next round tries again
                    pass
        finally:
            db.close()

    def version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        if self._closing.is_set():  # closed already: a second close() changes nothing
            return
        self._journal.close()
        self._closing.set()
        self._checkpointer.join()
        with self._lock:
            self._db.close()


def _run_row(run: Run) -> tuple:
    # Each field inline, with no helper call: _run_row and _finish_row are on every run's hot path.
    return (
        run.id,
        run.org,
        run.function,
        run.function_revision,
        run.status._value_ if isinstance(run.status, RunStatus) else run.status,  # not .value: a property
        run.queued,
        run.started,
        run.finished,
        1 if run.cold_start else 0,
        None if run.input is None else dumps(run.input),
        None if run.output is None else dumps(run.output),
        None if run.error is None else dumps(run.error.__dict__),
        _EMPTY_LOGS if not (run.logs.get("stdout") or run.logs.get("stderr")) else dumps(run.logs),
        None if run.event is None else dumps(run.event),
        None if run.http is None else dumps(run.http),
        dumps(run.tags) if run.tags else None,
        run.driver or None,
    )


def _finish_row(run: Run) -> tuple:
    logs = run.logs
    return (
        run.status._value_ if isinstance(run.status, RunStatus) else run.status,  # not .value: a property
        run.started,
        run.finished,
        1 if run.cold_start else 0,
        None if run.output is None else dumps(run.output),
        None if run.error is None else dumps(run.error.__dict__),
        _EMPTY_LOGS if not (logs.get("stdout") or logs.get("stderr")) else dumps(logs),
        run.driver or None,
        run.id,
    )


def _run_from_row(row: tuple) -> Run:
    (id_, org, function, revision, status, queued, started, finished, cold, input_, output,
     error, logs, event, http, tags, driver) = row
    return Run(
        function=function,
        id=id_,
        org=org,
        status=RunStatus(status),
        input=None if input_ is None else json.loads(input_),
        output=None if output is None else json.loads(output),
        error=None if error is None else RunFailure(**json.loads(error)),
        logs=json.loads(logs) if logs else {"stdout": "", "stderr": ""},
        event=None if event is None else json.loads(event),
        http=None if http is None else json.loads(http),
        queued=queued,
        started=started,
        finished=finished,
        cold_start=bool(cold),
        function_revision=revision,
        tags=json.loads(tags) if tags else {},
        driver=driver or "",
    )
