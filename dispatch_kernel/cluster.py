"""Servers sharing one store: who is alive, and what becomes of a dead server's runs.

Each server of a shared store (PostgreSQL) writes a heartbeat every HEARTBEAT seconds. A server
whose heartbeat is older than `ttl` is dead: any survivor fails its unfinished runs (a
SystemError that names it) within `ttl` plus one round, without waiting for anybody's restart.
A cancel asked of another server arrives here through the store and is carried out on a thread
of its own. With a store of one machine (SQLite) there is nothing to do: the host lease's
flock tells the living from the dead, and a core settles runs when it starts.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from .hosts import HostLease
from .store.base import EntityStore

log = logging.getLogger(__name__)

HEARTBEAT = 1.0  # seconds between heartbeats (and between looks for dead servers)
TTL = 5.0  # seconds without a heartbeat after which a server is taken for dead

Cancel = Callable[[str, str], object]  # (org, run_id): cancel a run of this server


def interrupted(host: str) -> str:
    """The message of a run failed because the server `host` died."""
    return f"the run was interrupted: server {host} stopped before it finished"


class Cluster:
    """This server's heartbeat and its share of settling dead servers' runs."""

    def __init__(self, store: EntityStore, lease: HostLease, *, ttl: float = TTL) -> None:
        self.store = store
        self.lease = lease
        self.id = lease.id
        self.ttl = ttl
        self.shared = store.shared
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_cancels: Callable[[], None] = lambda: None
        if self.shared:
            store.heartbeat(self.id)

    def is_alive(self, host: str) -> bool:
        """Whether the server `host` is running: a fresh heartbeat, or a held lease here."""
        if host == self.id or self.lease.is_alive(host):
            return True
        return self.shared and host in self.store.live_hosts(self.ttl)

    def forget(self, host: str) -> None:
        """Drop what is kept of a dead host."""
        self.lease.forget(host)
        if self.shared:
            self.store.forget_host(host)

    def start(self, cancel: Cancel) -> None:
        """Heartbeat, settle dead servers' runs and carry out cancels asked of this server."""
        if not self.shared:
            return

        def cancel_here(org: str, run_id: str) -> None:  # on the listener's thread: hand it over
            threading.Thread(target=_quietly, args=(cancel, org, run_id), daemon=True,
                             name="dispatch-remote-cancel").start()

        self._stop_cancels = self.store.on_cancel(self.id, cancel_here)
        self._thread = threading.Thread(target=self._loop, name="dispatch-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(HEARTBEAT):
            try:
                self.store.heartbeat(self.id)
                self.settle_dead()
            except Exception:  # the database may be restarting: the next round tries again
                if not self._stopping.is_set():
                    log.exception("heartbeat or settling of dead servers failed")

    def settle_dead(self) -> int:
        """Fail the unfinished runs of servers that are dead; returns how many."""
        unsettled = self.store.unsettled_hosts() - {self.id}
        if not unsettled:
            return 0
        alive = self.store.live_hosts(self.ttl)
        settled = 0
        for host in unsettled - alive:
            if self.lease.is_alive(host):
                continue
            count = self.store.fail_unsettled(host, interrupted(host))
            self.store.forget_host(host)
            if count:
                log.warning("failed %d run(s) of server %s, which stopped", count, host)
            settled += count
        return settled

    def close(self) -> None:
        """Stop the heartbeat; a clean shutdown leaves no heartbeat behind."""
        self._stopping.set()
        self._stop_cancels()
        if self._thread is not None:
            self._thread.join(10)
        if self.shared:
            try:
                self.store.forget_host(self.id)
            except Exception:
                log.exception("removing this server's heartbeat failed")


def _quietly(cancel: Cancel, org: str, run_id: str) -> None:
    try:
        cancel(org, run_id)
    except Exception as exc:  # the asker reads the run's state from the store
        log.info("a cancel of run %s asked by another server was not carried out: %s", run_id, exc)


__all__ = ["HEARTBEAT", "TTL", "Cluster", "interrupted"]
