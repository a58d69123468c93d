"""A write-ahead journal for run records, applied to the database in batches.

A run is written twice (QUEUED, then finished), and a SQLite commit costs 30-70 µs on a VM's
disk: more than the whole rest of a warm run. So run writes are appended to a journal file of
this process (one write() each, as durable as a WAL commit with synchronous=NORMAL: it
survives the process, not the machine) and a background thread applies them to the database in
one transaction every few milliseconds. Readers in this process flush first, so they always see
their own writes; another process sees them within one flush interval.

A journal whose process died (its flock is free) is replayed by the next process that opens
the store, before anything else reads it.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import pickle
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from ..model import StorageError

log = logging.getLogger(__name__)

# Errors that mean "no room": the disk is full, a quota is reached, or a file size limit.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

Entry = tuple[str, list[tuple]]  # (kind, rows): kind names a statement the store knows
Apply = Callable[[list[Entry]], None]

_HEADER = struct.Struct("!I")
FLUSH_INTERVAL = 0.02  # seconds between batches
FLUSH_ROWS = 4096  # a batch this large is applied at once


class RunJournal:
    """This process's journal: append now, apply in batches, replay what dead processes left."""

    def __init__(self, directory: Path, apply: Apply) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._apply = apply
        self.id = os.urandom(8).hex()
        # Locked before it is named `.lock`: a recovery in another process never finds this
        # journal's lock free (and takes it for a dead process's) while this process lives.
        unnamed = directory / f"{self.id}.lock.new"
        self._lock_fd = os.open(unnamed, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(unnamed, directory / f"{self.id}.lock")
        self._lock = threading.Lock()  # guards the segment and the pending list
        self._flushing = threading.Lock()  # one batch at a time, in order
        self._pending: list[Entry] = []
        self._pending_rows = 0
        self._segment = 0
        self._fd = self._open_segment()
        self._applied_segments: list[Path] = []  # segments whose entries are all pending
        self._failing = False  # the last flush could not apply its batch
        self._applying: list[Entry] = []  # the batch a flush is applying now
        self._unwritten: list[tuple[bytes, Entry]] = []  # kept records that found no room on disk
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._flush_loop, name="dispatch-journal", daemon=True)
        self._thread.start()

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{self.id}.{number:08d}.log"

    def _open_segment(self) -> int:
        return os.open(self._segment_path(self._segment),
                       os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def append(self, kind: str, rows: list[tuple], keep: bool = False) -> None:
        """Record `rows` for statement `kind`; durable once this returns. StorageError when the
        disk is full; with `keep`, the rows are then held in memory and written (and applied)
        once there is room again, unless this process ends first."""
        data = pickle.dumps((kind, rows), protocol=5)
        record = _HEADER.pack(len(data)) + data
        with self._lock:
            try:
                self._write_unwritten()  # first, in order: what waited for room
                self._write(record)
            except StorageError:
                if keep:
                    self._unwritten.append((record, (kind, rows)))
                raise
            self._pending.append((kind, rows))
            self._pending_rows += len(rows)
            large = self._pending_rows >= FLUSH_ROWS
        if large:
            self._wake.set()

    def _write(self, record: bytes) -> None:
        """Append `record` whole, or raise StorageError (no room) or the OSError and leave the
        segment as it was: a record cut short in the middle of a segment would hide every record
        written after it once space returns."""
        start = os.lseek(self._fd, 0, os.SEEK_END)
        view, written = memoryview(record), 0
        try:
            while written < len(record):
                count = os.write(self._fd, view[written:])
                if count == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)
            except OSError:  # cannot take it back: later records go to a fresh segment
                self._roll()
            if exc.errno in NO_SPACE:
                raise StorageError(f"the run store cannot record runs: {os.strerror(exc.errno).lower()} "
                                   f"({self.directory.parent}); nothing of this request was recorded, "
                                   "and runs recorded before are kept") from None
            raise

    def _write_unwritten(self) -> None:
        """Write the records kept for want of room (under self._lock); StorageError if there
        is still none."""
        while self._unwritten:
            record, entry = self._unwritten[0]
            self._write(record)
            self._unwritten.pop(0)
            self._pending.append(entry)
            self._pending_rows += len(entry[1])

    def find(self, kind: str, key: int, value: object) -> list[tuple]:
        """Rows of statement `kind` not yet in the database (pending, or kept for want of
        room) whose column `key` equals `value`, oldest first: for reads while the database
        cannot be written."""
        with self._lock:
            entries = [*self._applying, *self._pending, *(entry for _, entry in self._unwritten)]
        return [row for entry_kind, rows in entries if entry_kind == kind for row in rows if row[key] == value]

    def _roll(self) -> None:
        """Continue in a new segment (the current one ends with a cut record, which a replay
        ignores at its end); keep the current one if no new file can be made."""
        try:
            fd = os.open(self._segment_path(self._segment + 1),
                         os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        os.close(self._fd)
        self._applied_segments.append(self._segment_path(self._segment))  # deleted once applied
        self._segment += 1
        self._fd = fd

    def flush(self) -> None:
        """Apply everything appended so far to the database."""
        with self._flushing:
            with self._lock:
                if not self._pending:
                    return
                try:  # new appends go to a fresh segment; this one is deleted once applied
                    fresh = os.open(self._segment_path(self._segment + 1),
                                    os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, 0o600)
                except OSError:  # no room for a file: appends stay in this segment, kept for now
                    fresh = None
                batch, self._pending, self._pending_rows = self._pending, [], 0
                self._applying = batch  # still found by find() while it is applied
                old_fd, old_path = None, None
                if fresh is not None:
                    old_fd, old_path = self._fd, self._segment_path(self._segment)
                    self._segment += 1
                    self._fd = fresh
            if old_fd is not None:
                os.close(old_fd)
            try:
                self._apply(batch)
            except Exception as exc:
                if not self._failing:  # once per streak: a full disk would fill the log too
                    log.error("applying the run journal failed (%s); it stays in the journal and is "
                              "retried on every flush", exc)
                self._failing = True
                with self._lock:
                    self._pending[:0] = batch
                    self._applying = []
                    self._pending_rows += sum(len(rows) for _, rows in batch)
                    if old_path is not None:
                        self._applied_segments.append(old_path)  # its entries are pending again
                return
            if self._failing:
                log.warning("the run journal is applied again")
                self._failing = False
            with self._lock:
                self._applying = []
                done, self._applied_segments = self._applied_segments, []
            for path in done + ([old_path] if old_path is not None else []):
                path.unlink(missing_ok=True)

    def pending(self) -> int:
        """Rows appended and not yet applied."""
        with self._lock:
            return self._pending_rows

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            if self._unwritten:
                with self._lock:
                    try:
                        self._write_unwritten()
                    except StorageError:
                        pass  # still no room: the next round tries again
            try:
                self.flush()
            except Exception:  # never let the flusher die: the next round retries
                log.exception("run journal flush failed")

    def close(self) -> None:
        """Apply what is pending and remove this journal."""
        self._closed = True
        self._wake.set()
        self._thread.join()
        self.flush()
        with self._lock:
            os.close(self._fd)
        if not self._pending:
            self._segment_path(self._segment).unlink(missing_ok=True)
            (self.directory / f"{self.id}.lock").unlink(missing_ok=True)
        os.close(self._lock_fd)

    @staticmethod
    def recover(directory: Path, apply: Apply) -> int:
        """Replay and remove the journals of processes that died; returns entries replayed."""
        if not directory.exists():
            return 0
        replayed = 0
        for lock_path in sorted(directory.glob("*.lock")):
            journal_id = lock_path.stem
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # another process recovered it since the glob
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive and applies its own journal
                segments = sorted(directory.glob(f"{journal_id}.*.log"))
                entries = [entry for path in segments for entry in _read_segment(path)]
                if entries:
                    apply(entries)
                    replayed += len(entries)
                for path in segments:
                    path.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return replayed


class _Rows(pickle.Unpickler):
    """Reads journal entries, which are made of strings, numbers, bytes and None only: a file
    planted in the journal directory cannot make the store's process call anything."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        raise pickle.UnpicklingError(f"a journal entry may not hold {module}.{name}")


def _read_segment(path: Path) -> list[Entry]:
    data = path.read_bytes()
    entries, offset = [], 0
    while offset + 4 <= len(data):
        (size,) = _HEADER.unpack_from(data, offset)
        end = offset + 4 + size
        if end > len(data):
            break  # a record cut short by the crash: it was never acknowledged
        try:
            entries.append(_Rows(io.BytesIO(data[offset + 4:end])).load())
        except Exception as exc:  # not a journal entry of ours: what follows cannot be trusted
            log.error("%s: a record that is not a journal entry (%s); the rest of it is skipped", path, exc)
            break
        offset = end
    return entries
