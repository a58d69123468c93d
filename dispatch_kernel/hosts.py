"""Which process owns which runs, and whether that process is still alive.

Each process that runs functions holds an exclusive flock on a file named after it. The kernel
drops the lock when the process dies, however it dies, so a later process can tell a crashed
host (lock free) from a live one sharing the same store (lock held) without trusting pids.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path


class HostLease:
    """This process's claim to the runs it starts; released when the process ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        self._path = directory / f"{self.id}.lock"
        self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def is_alive(self, host: str) -> bool:
        """True while the process that took lease `host` is running (on any process here)."""
        if host == self.id:
            return True
        path = self.directory / f"{host}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def forget(self, host: str) -> None:
        """Remove the lock file of a host known to be dead."""
        if host != self.id:
            (self.directory / f"{host}.lock").unlink(missing_ok=True)

    def release(self) -> None:
        """Give the lease up (on a clean shutdown)."""
        if self._fd >= 0:
            self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1
