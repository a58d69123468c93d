"""The EntityStore interface every store implements (SQLite by default, PostgreSQL later).

The interface is synchronous on purpose: a warm run must cost well under 100 µs, and a hop
through an event loop from a notebook's thread costs about that much by itself. Callers in an
event loop (the Jupyter server) run store calls in a thread pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TypeVar

from ..model import Entity, Run

E = TypeVar("E", bound=Entity)


class EntityStore(ABC):
    """Entities scoped by organization, with optimistic concurrency, plus the run log."""

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
