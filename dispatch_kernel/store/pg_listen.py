"""Notifications from other servers sharing a PostgreSQL store (LISTEN/NOTIFY), on one thread.

One connection, in autocommit mode, listens on the store's channels; each notification is
handed to the callbacks of its channel on this thread (they must be quick). When the
connection breaks, the listener reconnects and tells every channel's callbacks with the
payload None: something may have changed meanwhile, and whoever caches must look again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

Callback = Callable[[str | None], None]
RECONNECT = 0.5  # seconds between attempts to reconnect a broken listener


class Listener:
    """LISTEN on `channels`; `on(channel, callback)` adds a callback (payload, or None)."""

    def __init__(self, dsn: str, channels: list[str]) -> None:
        self.dsn = dsn
        self.channels = channels
        self._callbacks: dict[str, tuple[Callback, ...]] = {name: () for name in channels}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="dispatch-pg-listen", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def on(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(payload)` for each notification on `channel`; returns a stop function."""
        with self._lock:
            self._callbacks[channel] = (*self._callbacks[channel], callback)

        def stop() -> None:
            with self._lock:
                self._callbacks[channel] = tuple(c for c in self._callbacks[channel] if c is not callback)

        return stop

    def _tell(self, channel: str, payload: str | None) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(payload)
            except Exception:  # one callback's failure never stops the others or the thread
                log.exception("a %s notification callback failed", channel)

    def _run(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    self._conn = conn
                    for channel in self.channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._ready.set()
                    if not first:  # notifications may have been missed while disconnected
                        for channel in self.channels:
                            self._tell(channel, None)
                    first = False
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            self._tell(notify.channel, notify.payload)
            except Exception as exc:
                if self._stopping.is_set():
                    break
                log.warning("the store's listener lost its connection (%s); reconnecting", exc)
                self._ready.set()
                time.sleep(RECONNECT)
            finally:
                self._conn = None

    def close(self) -> None:
        """Stop listening and close the connection."""
        self._stopping.set()
        self._thread.join(5)


__all__ = ["Listener"]
