"""Where a worker's output goes: one anonymous file per stream, which the worker and its host
both hold (runtime/worker.py says why)."""

from __future__ import annotations

import fcntl
import io
import os

LOG_LIMIT = 1 << 20  # characters kept per stream per run


def capture_file() -> int:
    """A new anonymous file to catch one stream of a worker: unlinked, appended to only (a
    reader may empty it between runs while the worker's children still write)."""
    # The temporary directory as tempfile would choose it, without importing tempfile (and
    # shutil, random ...: 7 ms of a fresh process's first deploy) when O_TMPFILE does the work.
    folder = next((os.environ[name] for name in ("TMPDIR", "TEMP", "TMP") if os.environ.get(name)), "/tmp")
    try:
        return os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except (AttributeError, OSError):  # no O_TMPFILE here, or not in that folder
        import tempfile

        handle, path = tempfile.mkstemp(prefix="dispatch-worker-")
        os.unlink(path)
        flags = fcntl.fcntl(handle, fcntl.F_GETFL)
        fcntl.fcntl(handle, fcntl.F_SETFL, flags | os.O_APPEND)
        return handle


def read_capture(fd: int) -> str:
    """What a capture file holds now, clipped to LOG_LIMIT characters."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, LOG_LIMIT), 0) if size else b""
    return clip(data.decode(errors="replace"), max(0, size - LOG_LIMIT))


class FdCapture:
    """Points a file descriptor at a capture file (`given` by the host, or a new one), and
    hands out, and then empties, what was written since the last time."""

    def __init__(self, fd: int, given: int | None = None) -> None:
        self.fd = fd
        handle = capture_file() if given is None else given
        os.dup2(handle, fd)
        os.close(handle)
        # Python's own writes go through to the same file at each line, so the host finds
        # them there if it has to kill the worker mid-run.
        self.stream = self._text()

    def _text(self) -> io.TextIOWrapper:
        return io.TextIOWrapper(io.FileIO(self.fd, "w", closefd=False), encoding="utf-8",
                                errors="backslashreplace", line_buffering=True)

    def writer(self) -> io.TextIOWrapper:
        """The text stream a run's sys.stdout or sys.stderr is (a new one if a run closed it)."""
        if self.stream.closed:
            self.stream = self._text()
        return self.stream

    def take(self) -> str:
        """What was written since the last take (at most LOG_LIMIT characters of it, with a
        note of how much more there was); the file is emptied for the next run."""
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass
        size = os.fstat(self.fd).st_size
        if not size:
            return ""
        text = read_capture(self.fd)
        os.ftruncate(self.fd, 0)
        return text


def clip(text: str, dropped: int = 0) -> str:
    """At most LOG_LIMIT characters of a run's log, with a note of how much more there was
    (`dropped`: what was left out before it reached `text`)."""
    dropped += max(0, len(text) - LOG_LIMIT)
    if not dropped:
        return text
    return text[:LOG_LIMIT] + f"\n[... {dropped} more characters dropped]\n"


__all__ = ["LOG_LIMIT", "FdCapture", "capture_file", "clip", "read_capture"]
