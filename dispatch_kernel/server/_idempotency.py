"""Idempotency keys: a POST resent with the key of its first try gets the first answer again.

The REST client resends a request once when its keep-alive connection drops before the answer
came. For a POST the server may already have carried out (a run started, a function created),
doing it again would start a second run. So the client sends an `Idempotency-Key` header, one
per logical request and the same on the resend, and the server remembers, per organization
and caller, the answer (status, content type, location, body) it gave to each key for a while:

- a key seen for the first time: the request is carried out and its answer remembered;
- the same key again with the same request (method, path, query, body): the first answer,
  marked `Idempotent-Replayed: true`; if the first try is still being carried out, the resend
  waits for it rather than doing the work a second time;
- the same key with a different request: 422, and nothing is done.

Answers of 5xx and streamed answers are not remembered (the retry is carried out anew, as
without a key). What is remembered is bounded in count, bytes and age, and lives in the
server's memory: a server that restarts forgets it, as it forgets its connections.

Everything here runs on the server's event loop, so nothing needs a lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEEP_SECONDS = 3600.0  # how long an answer is kept for a resend (the client resends at once)
MAX_ENTRIES = 10_000
MAX_BYTES = 64 << 20  # bodies kept in all; the oldest go first
MAX_BODY = 1 << 20  # an answer larger than this is not kept (its retry is carried out anew)

Scope = tuple[str, str, str]  # (organization, caller, key)


@dataclass
class Answer:
    """What was answered to a request: enough to answer it again."""

    status: int
    body: bytes
    content_type: str | None = None
    location: str | None = None


@dataclass
class _Entry:
    fingerprint: str
    expires: float
    answer: Answer | None = None  # None while the first try is being carried out
    done: asyncio.Event = field(default_factory=asyncio.Event)


class KeyReused(Exception):
    """The key was first sent with another request."""


def check_key(key: str) -> str | None:
    """Why `key` is not a usable idempotency key, or None when it is."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters"
    if not key.isascii() or not key.isprintable():
        return f"{HEADER} must be printable ASCII"
    return None


def fingerprint(method: str, uri: str, body: bytes) -> str:
    """What identifies a request for its key: method, path with query, and body."""
    digest = hashlib.sha256()
    for part in (method.encode(), uri.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyKeys:
    """The answers given to recent keys, per (organization, caller, key)."""

    def __init__(self, keep: float = KEEP_SECONDS, max_entries: int = MAX_ENTRIES,
                 max_bytes: int = MAX_BYTES) -> None:
        self.keep = keep
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Scope, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, scope: Scope, fingerprint: str) -> Answer | None:
        """The answer to replay for `scope`, or None when the caller is to carry the request
        out (and then call `remember` or `forget`). KeyReused for another request's key."""
        while True:
            self._expire()
            entry = self._entries.get(scope)
            if entry is None:
                self._entries[scope] = _Entry(fingerprint, time.monotonic() + self.keep)
                self._evict()
                return None
            if entry.fingerprint != fingerprint:
                raise KeyReused(f"this {HEADER} was sent before with another request (method, path or "
                                "body); send a new key for a new request")
            if entry.answer is not None:
                return entry.answer
            await entry.done.wait()  # the first try is still being carried out: its answer, not a second run
            # Remembered, or forgotten (a 5xx, a stream, a request that ended without an answer):
            # then this one carries it out.

    def remember(self, scope: Scope, answer: Answer) -> None:
        """Keep `answer` for `scope` (claimed before); a 5xx or large answer is forgotten instead."""
        entry = self._entries.get(scope)
        if entry is None or entry.answer is not None:
            return
        if answer.status >= 500 or len(answer.body) > MAX_BODY:
            self.forget(scope)
            return
        entry.answer = answer
        self._bytes += len(answer.body)
        entry.done.set()
        self._evict()

    def forget(self, scope: Scope) -> None:
        """Drop what `scope` claimed, if it has no answer yet; a resend waiting for it goes on."""
        entry = self._entries.get(scope)
        if entry is not None and entry.answer is None:
            del self._entries[scope]
            entry.done.set()

    def _drop(self, scope: Scope) -> None:
        entry = self._entries.pop(scope)
        if entry.answer is not None:
            self._bytes -= len(entry.answer.body)
        entry.done.set()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._entries:
            scope, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            self._drop(scope)

    def _evict(self) -> None:
        """The oldest answers go first when over the bounds (a claim in progress is kept)."""
        for scope in list(self._entries):
            if len(self._entries) <= self.max_entries and self._bytes <= self.max_bytes:
                break
            if self._entries[scope].answer is not None:
                self._drop(scope)


__all__ = ["HEADER", "REPLAYED_HEADER", "Answer", "IdempotencyKeys", "KeyReused", "check_key", "fingerprint"]
