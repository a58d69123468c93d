"""The EntityStore interface every store implements (SQLite by default, PostgreSQL later).

The interface is synchronous on purpose: a warm run must cost well under 100 µs, and a hop
through an event loop from a notebook's thread costs about that much by itself. Callers in an
event loop (the Jupyter server) run store calls in a thread pool.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, Callable, NamedTuple, TypeVar

from ..model import Entity, Run, RunStatus

E = TypeVar("E", bound=Entity)
RunsCallback = Callable[[list[Run]], None]
EntityRow = tuple[str, str, str, str, int, str]  # kind, org, name, id, revision, body (JSON)


class Claimed(NamedTuple):
    """A key another owner holds (EntityStore.claim): who, which key, and for how long (s)."""

    owner: str
    key: str
    age: float


class EntityStore(ABC):
    """Entities scoped by organization, with optimistic concurrency, plus the run log.

    A store that several servers share (`shared = True`: PostgreSQL) also keeps each server's
    heartbeat and leases, tells of changes made by the others (`version()`, `watch_runs`) and
    forwards cancels to the server running a run. The defaults below are those of a store that
    one machine's processes share through its files (SQLite), where none of that is needed.
    """

    shared = False

    @abstractmethod
    def create(self, entity: E) -> E:
        """Store a new entity at revision 1; a taken name is a ConflictError."""

    @abstractmethod
    def update(self, entity: E) -> E:
        """Store a changed entity whose `revision` is the stored one; a stale one is a ConflictError."""

    @abstractmethod
    def get(self, cls: type[E], org: str, name: str) -> E:
        """The entity of that kind and name; NotFoundError when there is none."""

    @abstractmethod
    def list(self, cls: type[E], org: str) -> list[E]:
        """Every entity of that kind in the organization, by name."""

    @abstractmethod
    def delete(self, cls: type[E], org: str, name: str) -> None:
        """Remove the entity; NotFoundError when there is none."""

    @abstractmethod
    def add_runs(self, runs: Iterable[Run], host: str) -> None:
        """Record new runs as they are now (QUEUED before dispatch, or already FAILED when
        their input was refused), owned by the host process `host`."""

    @abstractmethod
    def finish_runs(self, runs: Iterable[Run]) -> None:
        """Record the final state (status, times, output, error, logs) of added runs."""

    @abstractmethod
    def get_run(self, org: str, run_id: str) -> Run:
        """One run; NotFoundError when there is none."""

    @abstractmethod
    def list_runs(self, org: str, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        """Runs newest first, filtered; `before` is a run id to continue a listing after."""

    @abstractmethod
    def unsettled_hosts(self) -> set[str]:
        """Hosts that own runs still QUEUED or RUNNING."""

    @abstractmethod
    def fail_unsettled(self, host: str, message: str) -> int:
        """Fail every QUEUED or RUNNING run of `host` with a SystemError; returns how many."""

    @abstractmethod
    def version(self) -> int:
        """A number that changes whenever another process commits a change to the store."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections."""

    # ------------------------------------------------------------ moving a store (store copy)

    @abstractmethod
    def export_entities(self) -> Iterator[EntityRow]:
        """Every entity of every organization, as stored."""

    @abstractmethod
    def import_entities(self, rows: Iterable[EntityRow]) -> int:
        """Store entities as they are (revision included) unless one of that kind, org and name
        or id exists already; returns how many were new."""

    @abstractmethod
    def export_runs(self, after: str = "", limit: int = 5000) -> list[tuple[Run, str]]:
        """Up to `limit` runs with ids after `after`, by id, each with the host that owns it."""

    @abstractmethod
    def import_runs(self, runs: list[tuple[Run, str]]) -> None:
        """Store runs with their hosts; a run whose id exists already is left as it is."""

    # ------------------------------------------------------------ settings kept in the store

    @abstractmethod
    def get_meta(self, name: str) -> str | None:
        """A value the store keeps for Dispatch itself (the secret key's check value ...)."""

    @abstractmethod
    def set_meta(self, name: str, value: str, *, only_if_absent: bool = False) -> str:
        """Set it (unless it is set and `only_if_absent`); returns the value now stored."""

    # ------------------------------------------------------------ several servers

    def all_entities(self, cls: type[E]) -> list[E]:
        """Every entity of that kind in every organization (for key rotation)."""
        return [cls.from_dict(json.loads(body)) for kind, _org, _name, _id, _rev, body
                in self.export_entities() if kind == cls.kind]

    def flush(self) -> None:
        """Make every run record written so far readable by other servers now (a store shared
        by one machine's processes replays a dead process's journal itself: nothing to do)."""

    def watch_runs(self, callback: RunsCallback, exclude_host: str = "") -> Callable[[], None]:
        """Call `callback(runs)` with runs changed by other hosts; returns a stop function.
        A store that tells nothing (each process sees its own runs) returns a no-op."""
        return lambda: None

    def on_cancel(self, host: str, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `callback(org, run_id)` when another server asks `host` to cancel a run."""
        return lambda: None

    def request_cancel(self, host: str, org: str, run_id: str) -> None:
        """Ask the server `host` to cancel a run it is running."""
        raise NotImplementedError("this store cannot reach other servers")

    def run_host(self, org: str, run_id: str) -> str:
        """The host that owns the run."""
        raise NotImplementedError

    def heartbeat(self, host: str) -> None:
        """Say that `host` is alive now."""

    def live_hosts(self, within: float) -> set[str]:
        """Hosts whose last heartbeat is at most `within` seconds old."""
        return set()

    def forget_host(self, host: str) -> None:
        """Remove a dead host's heartbeat."""

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; False when another holder has it."""
        return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if `holder` has it."""

    def claim(self, scope: str, org: str, owner: str, keys: Iterable[str]) -> Claimed | None:
        """Make `keys` `owner`'s, each unique within (scope, org) across every process using
        this store, in place of the keys `owner` held there before, in one step. When another
        owner holds one of them, nothing changes and that holder is returned instead."""
        return None

    def release_claims(self, scope: str, org: str, owner: str) -> None:
        """Drop every key `owner` holds in (scope, org)."""

    def get_source_state(self, source_id: str) -> dict[str, Any] | None:
        """An event source's checkpoint, when the store keeps them (None: it does not)."""
        return None

    def put_source_state(self, source_id: str, value: dict[str, Any]) -> None:
        """Keep an event source's checkpoint (a store that keeps none ignores it)."""


def run_filter(org: str, *, function: str | None, status: str | None, since: float | None,
               before: str | None, limit: int, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of list_runs (then `ORDER BY id DESC LIMIT` its last parameter) and its
    parameters, with `mark` as the driver's placeholder ("?" for SQLite, "%s" for psycopg)."""
    clauses, params = [f"org={mark}"], [org]
    for column, value in (("function=", function), ("status=", None if status is None else RunStatus(status).value),
                          ("queued>=", since), ("id<", before)):
        if value is not None:
            clauses.append(column + mark)
            params.append(value)
    params.append(int(limit))
    return " AND ".join(clauses), params
