"""The fork server of one environment: `python -m dispatch_kernel.runtime.zygote FD`.

It starts once per environment, imports what the functions deployed there need, and forks a
worker in about a millisecond whenever the host asks. The control socket (SOCK_SEQPACKET, so
each message keeps its boundary and can carry a file descriptor) brings requests:

    ("fork", token, limits)     + the worker's channel fd  -> ("forked", token, pid)
                                  (and the files for its stdout and stderr, which the host
                                  keeps too, to read what a worker it killed had printed)
    ("preload", token, modules)                            -> ("preloaded", token, failures)

and carries ("exited", pid, wait_status) whenever a worker ends, so the host can say why.
When the host goes away the control socket reaches EOF and every worker is killed.

Each worker runs in a session of its own under `limits` (runtime/limits.py), in a pids cgroup
of its own when the machine has one we may write to: `dispatch-<fork server pid>/w<worker pid>`
beside this process's own cgroup. When a worker ends, whatever it left (its process group, its
cgroup) is ended with it.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import selectors
import signal
import socket
import sys
from pathlib import Path

import cloudpickle  # noqa: F401  (imported once here so that every worker has it for free)

from . import limits as contain
from . import worker

PR_SET_PDEATHSIG = 1


def _send(ctrl: socket.socket, message: tuple) -> None:
    ctrl.send(pickle.dumps(message))


def _die_with_parent() -> None:
    """Have the kernel kill this process when the fork server dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _become_worker(ctrl: socket.socket, wakeup: tuple[int, int], channel_fd: int,
                   captures: tuple[int, int] | None, limits: contain.Limits, groups: Path | None) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    ctrl.close()
    for fd in wakeup:
        os.close(fd)
    _die_with_parent()
    # Joining a cgroup costs 0.5 ms, and up to 20 ms when none was joined lately (the kernel
    # waits for an RCU grace period): only when there is a process limit to enforce.
    group = None
    if groups is not None and limits.processes:
        group = contain.make_group(groups, f"w{os.getpid()}")
    contain.enter(limits, group)
    try:
        worker.serve(channel_fd, captures)
    finally:
        os._exit(0)


def _groups() -> Path | None:
    """This fork server's cgroup for its workers' cgroups (None without a pids controller),
    after sweeping away those of fork servers that were killed."""
    root = contain.pids_cgroup_root()
    if root is None:
        return None
    contain.sweep_groups(root, contain.FORK_SERVER_GROUP_PREFIX, contain.pid_alive)
    group = contain.fork_server_groups(root, os.getpid())
    return contain.make_group(group.parent, group.name, delegate=True)


def _end_worker(pid: int, groups: Path | None) -> None:
    """End what worker `pid` left behind: its process group, its cgroup."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if groups is not None:
        contain.end_group(groups / f"w{pid}")


def _end_all(children: set[int], groups: Path | None) -> None:
    """End every worker, then their cgroups and ours. The workers are reaped first: an
    unreaped worker keeps its group busy, and the host stops waiting for us after a while."""
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)  # SIGKILL cannot be ignored: this returns as soon as it lands
        except ChildProcessError:
            pass
    if groups is not None:
        contain.end_tree(groups)


def main(ctrl_fd: int) -> None:
    """Serve fork and preload requests until the host closes the control socket."""
    ctrl = socket.socket(fileno=ctrl_fd)
    groups = _groups()
    sys.stdin.close()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(ctrl, selectors.EVENT_READ, "ctrl")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    _send(ctrl, ("hello", os.getpid(), sys.version))
    while True:
        for key, _ in selector.select():
            if key.data == "child":
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                while children:
                    try:  # look without reaping: while the worker is a zombie, its pid (and so
                        # its group's id) cannot be taken by another process
                        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                    except ChildProcessError:
                        break
                    if info is None or info.si_pid == 0:
                        break
                    pid = info.si_pid
                    _end_worker(pid, groups)
                    _, status = os.waitpid(pid, 0)
                    children.discard(pid)
                    _send(ctrl, ("exited", pid, status))
                continue
            try:
                data, fds, _, _ = socket.recv_fds(ctrl, 1 << 20, 4)
            except (ConnectionResetError, OSError):
                data, fds = b"", []
            if not data:
                _end_all(children, groups)
                return
            message = pickle.loads(data)
            if message[0] == "fork":
                limits = contain.Limits(*message[2]) if len(message) > 2 else contain.Limits()
                captures = (fds[1], fds[2]) if len(fds) >= 3 else None
                pid = os.fork()
                if pid == 0:
                    _become_worker(ctrl, (wake_r, wake_w), fds[0], captures, limits, groups)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
                _send(ctrl, ("forked", message[1], pid))
            elif message[0] == "preload":
                failures = {}
                for module in message[2]:
                    try:
                        importlib.import_module(module)
                    except BaseException as exc:  # a module that will not import here is not fatal
                        failures[module] = f"{type(exc).__name__}: {exc}"
                _send(ctrl, ("preloaded", message[1], failures))
            else:
                for fd in fds:
                    os.close(fd)


if __name__ == "__main__":
    main(int(sys.argv[1]))
