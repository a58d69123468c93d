"""What keeps one run's abuse inside its worker: limits, and the cleanup after every run.

A worker runs in a session (and process group) of its own, with

- at most `processes` tasks (processes and threads, its own included) when the machine has a
  pids cgroup controller we may write to: each worker gets a cgroup of its own under its fork
  server's. RLIMIT_NPROC is set as well, but it counts every process of the user and binds no
  one running as root, so on its own it would not stop a fork bomb there;
- at most `open_files` file descriptors (RLIMIT_NOFILE);
- files of at most `file_size` bytes (RLIMIT_FSIZE; SIGXFSZ is ignored, so a write past it
  fails with EFBIG instead of killing the worker).

After every run the worker ends whatever processes the run left behind (the worker is a child
subreaper, so even a daemonized grandchild comes back to it to be ended), goes back to its
working directory, puts back its environment variables, signal handlers and signal mask.
"""

from __future__ import annotations

import _signal  # the C module behind `signal`: its calls cost 0.05 µs, the wrappers' 1 µs
import os
import resource
import signal
import threading
import time
from typing import Callable, NamedTuple

PR_SET_CHILD_SUBREAPER = 36
# Signals a function may take over for its run; the worker's own dispositions come back after.
_SIGNALS = tuple(int(number) for number in (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
    signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ))
FORK_SERVER_GROUP_PREFIX = "dispatch-"  # + the fork server's pid
_KILL_ROUNDS = 200  # bound on kill-and-reap rounds after a run (a fork bomb refills them)


class Limits(NamedTuple):
    """Per-worker limits; 0 or None means no limit of that kind. (A NamedTuple: the fork
    server receives it as a tuple, and a dataclass would compile its methods at every start.)"""

    processes: int | None = 64
    open_files: int | None = 1024
    file_size: int | None = 1 << 30

    @classmethod
    def from_options(cls, options: dict) -> Limits:
        """The limits named in the local driver's options (`max_processes`, `max_open_files`,
        `max_file_size`), the defaults for those not named."""
        from ..units import parse_size

        default = cls()
        size = options.get("max_file_size", default.file_size)
        return cls(
            processes=_count(options.get("max_processes", default.processes), "max_processes"),
            open_files=_count(options.get("max_open_files", default.open_files), "max_open_files"),
            file_size=parse_size(size) if isinstance(size, str) else _count(size, "max_file_size"),
        )


def _count(value: object, name: str) -> int | None:
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a positive whole number (or 0 for no limit), not {value!r}")
    return value


# ---------------------------------------------------------------------------- pids cgroups


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def pids_cgroup_root() -> str | None:
    """The directory of this process's cgroup in a writable pids hierarchy (cgroup v1 with
    the pids controller, or v2 where pids is enabled for children), or None."""
    try:
        mounts = _read("/proc/self/mountinfo").splitlines()
        groups = _read("/proc/self/cgroup").splitlines()
    except OSError:
        return None
    own_v1 = {}
    own_v2 = None
    for line in groups:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            own_v2 = path
        for controller in controllers.split(","):
            own_v1[controller] = path
    for line in mounts:
        before, _, after = line.partition(" - ")
        fields, extra = before.split(), after.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        root, mount_point, fstype, options = fields[3], fields[4], extra[0], extra[2]
        if fstype == "cgroup" and "pids" in options.split(",") and "pids" in own_v1:
            path = _join(mount_point, root, own_v1["pids"])
        elif fstype == "cgroup2" and own_v2 is not None:
            path = _join(mount_point, root, own_v2)
            try:
                if "pids" not in _read(os.path.join(path, "cgroup.subtree_control")).split():
                    continue
            except OSError:
                continue
        else:
            continue
        if os.access(path, os.W_OK) and os.path.exists(os.path.join(path, "cgroup.procs")):
            return path
    return None


def _join(mount_point: str, root: str, own: str) -> str:
    relative = os.path.relpath(own, root) if own.startswith(root) else own
    return os.path.join(mount_point, relative.lstrip("./")) if relative != "." else mount_point


def make_group(parent: str, name: str, delegate: bool = False) -> str | None:
    """A new cgroup `name` under `parent` (None when it cannot be made). With `delegate`, its
    own children get the pids controller too (cgroup v2 asks for it; v1 has no such file)."""
    path = os.path.join(parent, name)
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except OSError:
        return None
    control = os.path.join(path, "cgroup.subtree_control")
    if delegate and os.path.exists(control):
        try:
            _write(control, "+pids")
        except OSError:
            pass
    return path


def join_group(group: str, processes: int | None) -> bool:
    """Move this process into `group`, capped at `processes` tasks; False if it could not."""
    try:
        _write(os.path.join(group, "pids.max"), str(processes) if processes else "max")
        tasks = os.path.join(group, "tasks")
        if os.path.exists(tasks) and len(os.listdir("/proc/self/task")) == 1:
            # cgroup v1, one thread (a worker just forked): moving the calling thread ("0")
            # is moving the process, and the kernel then skips the global lock that a move
            # through cgroup.procs takes, which waits for an RCU grace period: 0.3 ms, not
            # 5-30 ms, and the first run of a fresh process waited for it.
            _write(tasks, "0")
        else:
            _write(os.path.join(group, "cgroup.procs"), str(os.getpid()))
    except OSError:
        return False
    return True


def end_group(group: str, grace: float = 2.0) -> bool:
    """Kill every task left in `group`, then remove it; False if it could not be removed."""
    deadline = time.monotonic() + grace
    while True:
        try:
            pids = [int(p) for p in _read(os.path.join(group, "cgroup.procs")).split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(group)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def sweep_groups(parent: str, prefix: str, alive: Callable[[int], bool]) -> None:
    """Remove the cgroups `<prefix><pid>` under `parent` whose pid `alive(pid)` says is gone
    (left by a fork server that was killed), ending what is still in them."""
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for name in entries:
        entry = os.path.join(parent, name)
        if not name.startswith(prefix) or not os.path.isdir(entry):
            continue
        try:
            pid = int(name[len(prefix):])
        except ValueError:
            continue
        if not alive(pid):
            end_tree(entry)


def fork_server_groups(root: str, pid: int) -> str:
    """Where the fork server `pid` keeps its workers' cgroups, under `root`."""
    return os.path.join(root, f"{FORK_SERVER_GROUP_PREFIX}{pid}")


def end_fork_server_groups(pid: int) -> None:
    """Remove the cgroups the (ended) fork server `pid` left, ending what is in them."""
    root = pids_cgroup_root()
    if root is not None and os.path.isdir(fork_server_groups(root, pid)):
        end_tree(fork_server_groups(root, pid))


def sweep_fork_server_groups() -> None:
    """Remove the cgroups of every fork server that is gone, ending what is left in them."""
    root = pids_cgroup_root()
    if root is not None:
        sweep_groups(root, FORK_SERVER_GROUP_PREFIX, pid_alive)


def end_tree(group: str) -> bool:
    """End `group` and the cgroups directly under it (a fork server's and its workers'),
    killing what is left in them; False if some could not be removed."""
    try:
        children = [path for path in (os.path.join(group, name) for name in os.listdir(group))
                    if os.path.isdir(path)]
    except FileNotFoundError:
        return True
    except OSError:
        children = []
    ended = all([end_group(child) for child in children])
    return end_group(group) and ended


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------- in the worker


def enter(limits: Limits, group: str | None) -> None:
    """Make this freshly forked process a contained worker (see the module docstring)."""
    os.setsid()
    if group is not None:
        join_group(group, limits.processes)
    if limits.processes:
        _set(resource.RLIMIT_NPROC, limits.processes)  # binds non-root users at least
    if limits.open_files:
        _set(resource.RLIMIT_NOFILE, limits.open_files)
    if limits.file_size:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _set(resource.RLIMIT_FSIZE, limits.file_size)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _set(kind: int, value: int) -> None:
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


class Restorer:
    """What a worker puts back after every run: no leftover processes, its working directory,
    environment, signal handlers and signal mask. Cheap when nothing changed (about 1.5 µs,
    and 1 µs more after the answer is sent): it runs after every warm run."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self._environ_data = dict(os.environ._data)  # type: ignore[attr-defined]
        self.handlers = {number: _signal.getsignal(number) for number in _SIGNALS}
        self.mask = _signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self._children = os.open(f"/proc/self/task/{self.pid}/children", os.O_RDONLY | os.O_CLOEXEC)

    def restore(self) -> list[str]:
        """Put everything back; says what had to be (for the run's log)."""
        notes = []
        if os.pread(self._children, 64, 0).strip() or (threading.active_count() > 2 and _children(self.pid)):
            ended = self._end_children()
            notes.append(f"ended {ended} process(es) the run left running")
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
            notes.append("went back to the working directory")
        if os.environ._data != self._environ_data:  # type: ignore[attr-defined]
            os.environ.clear()
            os.environ.update(self.environ)
            notes.append("restored the environment variables")
        return notes

    def restore_signals(self) -> None:
        """Put back the signal handlers and mask. Separate from restore() so that a worker
        can do it after answering, off the warm path (about 1 µs)."""
        getsignal = _signal.getsignal
        for number, handler in self.handlers.items():
            if getsignal(number) is not handler:
                signal.signal(number, handler)
        if _signal.pthread_sigmask(signal.SIG_BLOCK, []) != self.mask:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)

    def descriptors_nearly_exhausted(self) -> bool:
        """Whether this process has used nine tenths of its file descriptors (listing them
        costs tens of µs: asked only after a failed run)."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return False
        try:
            return len(os.listdir("/proc/self/fd")) >= soft * 0.9
        except OSError:  # no descriptor left even to list them
            return True

    def _end_children(self) -> int:
        """SIGKILL every descendant, round after round (a dying process's children come back
        to this subreaper), and reap them; how many were ended."""
        ended = 0
        for _ in range(_KILL_ROUNDS):
            children = _children(self.pid)
            if not children:
                break
            for pid in children:
                for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        target()
                    except (ProcessLookupError, PermissionError):
                        pass
            for pid in children:
                try:
                    os.waitpid(pid, 0)
                    ended += 1
                except ChildProcessError:
                    pass
        return ended


def _children(pid: int) -> list[int]:
    """The children of every thread of process `pid`."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as children:
                found.extend(int(p) for p in children.read().split())
        except OSError:
            pass
    return found


__all__ = ["Limits", "Restorer", "end_group", "enter", "make_group", "pid_alive", "pids_cgroup_root",
           "sweep_groups"]
