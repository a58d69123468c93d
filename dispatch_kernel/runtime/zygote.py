"""The fork server of one environment: `python -m dispatch_kernel.runtime.zygote FD` (the host
starts it as runtime/forkserver.py says, which runs the same `main`).

It starts once per environment, imports what the functions deployed there need, and forks a
worker in about a millisecond whenever the host asks. The control socket (SOCK_SEQPACKET, so
each message keeps its boundary and can carry a file descriptor) brings requests:

    ("fork", token, limits)     + the worker's channel fd  -> ("forked", token, pid)
                                  (and the files for its stdout and stderr, which the host
                                  keeps too, to read what a worker it killed had printed)
    ("preload", token, modules)                            -> ("preloaded", token, failures)

and carries ("exited", pid, wait_status) whenever a worker ends, so the host can say why.
When the host goes away the control socket reaches EOF and every worker is killed.

It keeps one spare worker forked ahead (named dispatch-spare while it waits), contained under
the limits last asked for: a fork request with those limits hands it the channel instead of
forking, so a cold start pays neither the fork nor the cgroup join, and a new spare is forked
while the host is busy with the run. A preload that imports anything replaces the spare, so
that it holds what the fork server does.

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


def _become_worker(ctrl: socket.socket, wakeup: tuple[int, int], fds: list[int] | socket.socket,
                   limits: contain.Limits, groups: str | None) -> None:
    """Become a worker under `limits` serving the channel `fds[0]` (its output going to the
    capture files `fds[1:3]` when given), or, given the handoff socket of a spare, wait on it
    for those descriptors once contained."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    ctrl.close()
    for fd in wakeup:
        os.close(fd)
    _die_with_parent()
    # Joining a cgroup costs ~0.3 ms (through cgroup.procs, up to 30 ms when none was joined
    # lately: see contain.join_group): only when there is a process limit to enforce.
    group = None
    if groups is not None and limits.processes:
        group = contain.make_group(groups, f"w{os.getpid()}")
    contain.enter(limits, group)
    if isinstance(fds, socket.socket):
        fds = _wait_as_spare(fds)
    try:
        worker.serve(fds[0], (fds[1], fds[2]) if len(fds) >= 3 else None)
    finally:
        os._exit(0)


def _wait_as_spare(handoff: socket.socket) -> list[int]:
    """The descriptors of a fork request (its channel, its capture files) the fork server
    hands this spare, contained already; the process ends if it is discarded instead."""
    name = _set_name(b"dispatch-spare")  # what `ps` shows while it waits (not a function's worker)
    try:
        _, fds, _, _ = socket.recv_fds(handoff, 16, 4)
    except OSError:
        fds = []
    handoff.close()
    if not fds:
        os._exit(0)
    _set_name(name)
    return fds


def _set_name(name: bytes) -> bytes:
    """Set this process's name (as `ps` and /proc/PID/comm show it); returns the one before."""
    try:
        with open("/proc/self/comm", "rb") as comm:
            before = comm.read().strip()
        with open("/proc/self/comm", "wb") as comm:
            comm.write(name)
    except OSError:
        return b""
    return before


class _Spare:
    """A worker forked ahead under `limits`, in its cgroup already, waiting for its channel:
    the next cold start with these limits then costs neither the fork nor the cgroup join,
    which happened while the host was busy elsewhere."""

    def __init__(self, ctrl: socket.socket, wakeup: tuple[int, int], limits: contain.Limits,
                 groups: str | None) -> None:
        self.limits = limits
        self.handoff, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            self.handoff.close()
            _become_worker(ctrl, wakeup, theirs, limits, groups)
        theirs.close()

    def hand_over(self, fds: list[int]) -> bool:
        """Give the spare a fork request's descriptors: it is then a worker. False if it is gone."""
        try:
            socket.send_fds(self.handoff, [b"w"], fds)
        except OSError:
            return False
        finally:
            self.handoff.close()
        return True

    def discard(self) -> None:
        """End it unused (its end is reported like any worker's)."""
        self.handoff.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _new_spare(ctrl: socket.socket, wakeup: tuple[int, int], limits: contain.Limits,
               groups: str | None, children: set[int]) -> _Spare | None:
    """A new spare (None when the machine will not fork one now: the fork requests then fork
    as they come, and say why if they cannot)."""
    try:
        spare = _Spare(ctrl, wakeup, limits, groups)
    except OSError:
        return None
    children.add(spare.pid)
    return spare


def _groups() -> str | None:
    """This fork server's cgroup for its workers' cgroups (None without a pids controller),
    after sweeping away those of fork servers that were killed."""
    root = contain.pids_cgroup_root()
    if root is None:
        return None
    contain.sweep_groups(root, contain.FORK_SERVER_GROUP_PREFIX, contain.pid_alive)
    group = contain.fork_server_groups(root, os.getpid())
    return contain.make_group(root, os.path.basename(group), delegate=True)


def _end_worker(pid: int, groups: str | None) -> None:
    """End what worker `pid` left behind: its process group, its cgroup."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if groups is not None:
        contain.end_group(os.path.join(groups, f"w{pid}"))


def _end_all(children: set[int], groups: str | None) -> None:
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


def _close_inherited(keep: int) -> None:
    """Close every descriptor but the standard ones and `keep`, as subprocess's close_fds
    would: the host spawns this process with every descriptor it had inheritable."""
    try:
        held = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every possible descriptor
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in held:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor, closed already
                pass


def main(ctrl_fd: int) -> None:
    """Serve fork and preload requests until the host closes the control socket."""
    _close_inherited(keep=ctrl_fd)
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
    wakeup = (wake_r, wake_w)
    spare = _new_spare(ctrl, wakeup, contain.Limits(), groups, children)  # for the first cold start
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
                    if spare is not None and pid == spare.pid:  # reaped: its pid is no longer ours to kill
                        spare.handoff.close()
                        spare = None
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
                if spare is not None and spare.limits == limits and spare.hand_over(fds):
                    pid = spare.pid
                else:
                    if spare is not None:
                        spare.discard()
                    pid = os.fork()
                    if pid == 0:
                        _become_worker(ctrl, wakeup, fds, limits, groups)
                    children.add(pid)
                for fd in fds:
                    os.close(fd)
                _send(ctrl, ("forked", message[1], pid))
                spare = _new_spare(ctrl, wakeup, limits, groups, children)
            elif message[0] == "preload":
                failures = {}
                known = len(sys.modules)
                for module in message[2]:
                    try:
                        importlib.import_module(module)
                    except BaseException as exc:  # a module that will not import here is not fatal
                        failures[module] = f"{type(exc).__name__}: {exc}"
                _send(ctrl, ("preloaded", message[1], failures))
                if spare is not None and len(sys.modules) != known:  # the spare lacks what came in
                    spare.discard()
                    spare = _new_spare(ctrl, wakeup, spare.limits, groups, children)
            else:
                for fd in fds:
                    os.close(fd)


if __name__ == "__main__":
    main(int(sys.argv[1]))
