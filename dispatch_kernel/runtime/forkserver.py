"""Starting the process of an environment's fork server (runtime/zygote.py), on the host's side.

Light on purpose (the standard library's process and socket modules only, not even pathlib):
connect() starts the fork server of its own interpreter here before it imports the core, so
that the fork server's ~50 ms of start-up overlap the core's imports, the store's opening and
the first packaging instead of following them. The local driver then adopts the process (or closes it
when its settings call for another environment).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

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


class ForkServerProcess:
    """A fork server process just started, and the host's end of its control socket
    (SOCK_SEQPACKET: each message keeps its boundary and may carry a file descriptor)."""

    def __init__(self, python: str, environment_id: str, log: str) -> None:
        self.python = python
        self.environment_id = environment_id
        self.log_path = log
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = without_credentials(dict(os.environ))  # functions never see the server's keys
        # Workers must see the caller's unbuffered output and no debugger hooks of ours.
        env["PYTHONUNBUFFERED"] = "1"
        if environment_id != HOST_ENVIRONMENT:
            # A built environment has exactly what it needs (dispatch_kernel comes through a
            # .pth file); the caller's PYTHONPATH would shadow its packages with the caller's.
            env.pop("PYTHONPATH", None)
        try:
            os.makedirs(os.path.dirname(log), exist_ok=True)
            with open(log, "ab") as log_file:
                self.process = subprocess.Popen(
                    [python, "-c", _ZYGOTE_MAIN, str(theirs.fileno())],
                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=log_file, env=env, cwd=os.getcwd(),
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.ctrl = ours

    def serves(self, python: str, environment_id: str, log: str) -> bool:
        """Whether this is the fork server a driver would start for that environment."""
        return (self.python, self.environment_id, self.log_path) == (python, environment_id, log)

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


__all__ = ["HOST_ENVIRONMENT", "ForkServerProcess", "fork_server_log", "start_for_host"]
