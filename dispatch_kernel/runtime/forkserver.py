"""Starting the process of an environment's fork server (runtime/zygote.py), on the host's side.

Light on purpose (os and the socket module's C part only: not subprocess, socket or pathlib,
whose imports would delay it by ~8 ms): connect() starts the fork server of its own interpreter
here before it imports the core, so that the fork server's ~50 ms of start-up overlap the
core's imports, the store's opening and the first packaging instead of following them. The
local driver then adopts the process (or closes it when its settings call for another
environment).
"""

from __future__ import annotations

import _socket
import _thread
import os
import sys
import time

from ..credentials import without_credentials

HOST_ENVIRONMENT = "host"  # the environment of the caller's own interpreter
# What the fork server's interpreter runs. Not `-m dispatch_kernel.runtime.zygote`: runpy and
# importlib.util would cost ~3 ms of its start, which every first deploy waits for. `ps` still
# shows the module's name, by which tests and operators find fork servers.
_ZYGOTE_MAIN = "import sys; from dispatch_kernel.runtime.zygote import main; main(int(sys.argv[1]))"


def fork_server_log(home: str | os.PathLike[str], environment_id: str) -> str:
    """Where the fork server of `environment_id` writes its output (a string: this module
    does without pathlib, see the docstring)."""
    return os.path.join(os.fspath(home), "logs", f"zygote-{environment_id}.log")


class SpawnedProcess:
    """A child started with os.posix_spawn, as the host watches it: the part of
    subprocess.Popen the drivers use (pid, returncode, poll, wait, kill)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = _thread.allocate_lock()  # the reader thread and close() may both poll

    def poll(self) -> int | None:
        """Its exit code (negative: the signal that ended it), or None while it runs."""
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped by someone else: how it ended is lost
                    self.returncode = 0
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until it has ended; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"process {self.pid} did not end within {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return code

    def kill(self) -> None:
        """SIGKILL it, unless it has ended."""
        if self.poll() is None:
            import signal  # here: its enums would delay the spawn

            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ForkServerProcess:
    """A fork server process just started, and the host's end of its control socket
    (SOCK_SEQPACKET: each message keeps its boundary and may carry a file descriptor)."""

    def __init__(self, python: str, environment_id: str, log: str | os.PathLike[str]) -> None:
        self.python = python
        self.environment_id = environment_id
        self.log_path = os.fspath(log)
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        env = without_credentials(dict(os.environ))  # functions never see the server's keys
        # Workers must see the caller's unbuffered output and no debugger hooks of ours.
        env["PYTHONUNBUFFERED"] = "1"
        if environment_id != HOST_ENVIRONMENT:
            # A built environment has exactly what it needs (dispatch_kernel comes through a
            # .pth file); the caller's PYTHONPATH would shadow its packages with the caller's.
            env.pop("PYTHONPATH", None)
        try:
            os.makedirs(os.path.dirname(log), exist_ok=True)
            log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            try:
                # Inheritable only for this spawn (posix_spawn passes every inheritable
                # descriptor; the fork server closes the others, see zygote._close_inherited).
                os.set_inheritable(theirs.fileno(), True)
                pid = os.posix_spawn(python, [python, "-c", _ZYGOTE_MAIN, str(theirs.fileno())], env,
                                     file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                                   (os.POSIX_SPAWN_DUP2, log_fd, 1),
                                                   (os.POSIX_SPAWN_DUP2, log_fd, 2)])
            finally:
                os.close(log_fd)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.process = SpawnedProcess(pid)
        self.ctrl = ours  # a _socket.socket: the driver wraps it in a socket.socket

    def serves(self, python: str, environment_id: str, log: str | os.PathLike[str]) -> bool:
        """Whether this is the fork server a driver would start for that environment."""
        return (self.python, self.environment_id, self.log_path) == (python, environment_id, os.fspath(log))

    def close(self) -> None:
        """Stop it unused (it has no worker yet); safe to call twice."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.ctrl.close()


def start_for_host(home: str | os.PathLike[str]) -> ForkServerProcess | None:
    """The fork server of this interpreter's environment under `home`, started now (None if it
    could not be: the driver then starts one itself, and says why if that fails too)."""
    try:
        return ForkServerProcess(sys.executable, HOST_ENVIRONMENT, fork_server_log(home, HOST_ENVIRONMENT))
    except OSError:
        return None


__all__ = ["HOST_ENVIRONMENT", "ForkServerProcess", "SpawnedProcess", "fork_server_log", "start_for_host"]
