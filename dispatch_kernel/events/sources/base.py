"""EventSourceDriver: the plug-in interface of event sources (entry points
`dispatch_kernel.event_sources`), and what a running source is given (SourceContext)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from ...entities import EventSource

Emit = Callable[[dict[str, Any]], Any]  # a CloudEvent dict -> published (blocking)


class SourceState:
    """Small durable checkpoints of sources (last tick, last vCenter event), one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (source TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS orgs (org TEXT PRIMARY KEY)")
        self._lock = threading.Lock()

    def orgs(self) -> set[str]:
        """Organizations that have used events here (their sources start with the host)."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT org FROM orgs")}

    def add_org(self, org: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO orgs (org) VALUES (?)", (org,))

    def get(self, source_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE source=?", (source_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def put(self, source_id: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state (source, value) VALUES (?,?)",
                             (source_id, json.dumps(value)))

    def forget(self, source_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM state WHERE source=?", (source_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SourceContext:
    """What a running source may use: its entity, decrypted secrets, emit and a checkpoint."""

    def __init__(self, entity: EventSource, secrets: Mapping[str, Mapping[str, str]], emit: Emit,
                 state: SourceState) -> None:
        self.entity = entity
        self.config = dict(entity.config)
        self.secrets = {k: dict(v) for k, v in secrets.items()}
        self._emit = emit
        self._state = state
        self.log = logging.getLogger(f"dispatch_kernel.events.sources.{entity.type}.{entity.name}")

    async def emit(self, event: dict[str, Any]) -> None:
        """Publish the event durably (off the event loop: the bus may block briefly)."""
        await asyncio.get_running_loop().run_in_executor(None, self._emit, event)

    def load_state(self) -> dict[str, Any]:
        return self._state.get(self.entity.id)

    def save_state(self, value: dict[str, Any]) -> None:
        self._state.put(self.entity.id, value)


class EventSourceDriver(ABC):
    """One running event source; `run` is supervised: it is restarted with backoff when it
    raises and cancelled when the source is deleted."""

    #: whether the source needs a task at all (a webhook only answers requests)
    runs = True

    def __init__(self, context: SourceContext) -> None:
        self.context = context

    @classmethod
    def check_config(cls, config: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
        """The normalized configuration; InvalidRequestError for a bad one (nothing is created)."""
        return dict(config)

    @abstractmethod
    async def run(self) -> None:
        """Follow the outside world and emit events until cancelled."""


def sleep_forever() -> Awaitable[None]:
    return asyncio.Event().wait()
