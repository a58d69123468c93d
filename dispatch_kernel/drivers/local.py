"""The default driver: pools of warm worker processes on this machine.

Per environment one fork server (zygote) holds the imports; per function a pool of workers
forked from it. A run is written to a worker's socket and its result read back by the calling
thread itself: no queue, no extra thread on the warm path. A timeout kills the worker; a worker
that dies fails only the job it was running, and the rest of its batch runs elsewhere.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import pickle
import signal
import socket
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from ..images.base import Environment, Progress
from ..model import DeployError, Function, InvalidRequestError
from ..packaging import FunctionSource
from ..runtime.channel import Channel, ChannelClosed
from ..runtime import limits as contain
from ..runtime.capture import capture_file, read_capture
from ..runtime.forkserver import ForkServerProcess, fork_server_log
from ..runtime.limits import Limits
from ..runtime.protocol import Job, Outcome, load_answer
from ..runtime.spin import Spin
from ..settings import Settings
from .base import OutcomeSink, Runs
from .pooled import PooledDriver, WorkerPool, failed_outcome, settle_batch

log = logging.getLogger(__name__)

_ZYGOTE_START_TIMEOUT = 60.0
_REQUEST_TIMEOUT = 60.0
_EXIT_REPORT_TIMEOUT = 2.0
# A lone blocking run polls for its answer this long before the thread sleeps (see
# Channel.recv). Only one thread spins at a time: spinning threads would fight for the GIL.
# The Spin keeps it from polling when answers come slowly or other work wants the CPU.
_SPIN_FOR_ANSWER = 0.0002


class ZygoteError(DeployError):
    """The fork server of an environment could not start or stopped answering."""


class Zygote:
    """The fork server of one environment, seen from the host."""

    def __init__(self, environment: Environment, log_path: str | Path,
                 started: ForkServerProcess | None = None) -> None:
        """The fork server of `environment`: `started` (one connect() started ahead for it),
        or a new one."""
        self.environment = environment
        if started is None:
            started = ForkServerProcess(environment.python, environment.id, str(log_path))
        self.log_path = Path(log_path)
        self.process = started.process
        self._ctrl = socket.socket(fileno=started.ctrl.detach())
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, tuple] = {}
        self._exits: OrderedDict[int, int] = OrderedDict()
        self._tokens = itertools.count(1)
        self._alive = True
        self.on_exit: Callable[[Zygote], None] | None = None  # called once it is seen to end
        self._hello = threading.Event()
        threading.Thread(target=self._read, name=f"zygote-{environment.id}", daemon=True).start()

    def ready(self) -> None:
        """Wait until the fork server has started (it says hello once its imports are done);
        ZygoteError with the end of its log if it cannot."""
        if self._hello.is_set() and self._alive:
            return
        if not self._hello.wait(_ZYGOTE_START_TIMEOUT) or not self._alive:
            self.close()
            raise ZygoteError(f"the worker environment {self.environment.id} did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-10:]) or "(no output)"

    def _read(self) -> None:
        while True:
            try:
                data = self._ctrl.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._alive = False
                    self._cond.notify_all()
                self._hello.set()
                if self.on_exit is not None:
                    self.on_exit(self)
                return
            try:  # the fork server imports what functions need: trust nothing it sends
                message = load_answer(data)
            except Exception:
                log.error("the fork server of %s sent something other than its messages; closing it",
                          self.environment.id)
                with self._cond:
                    self._alive = False
                    self._cond.notify_all()
                self._hello.set()
                self._ctrl.close()
                return
            with self._cond:
                if message[0] == "exited":
                    self._exits[message[1]] = message[2]
                    while len(self._exits) > 4096:
                        self._exits.popitem(last=False)
                elif message[0] == "hello":
                    self._hello.set()
                else:
                    self._replies[message[1]] = message
                self._cond.notify_all()

    @property
    def alive(self) -> bool:
        """True while the fork server answers."""
        return self._alive and self.process.poll() is None

    def _request(self, message: tuple, fds: list[int] = ()) -> tuple:
        self.ready()
        token = message[1]
        with self._send_lock:
            try:
                socket.send_fds(self._ctrl, [pickle.dumps(message)], list(fds))
            except OSError as exc:
                raise ZygoteError(f"the worker environment {self.environment.id} stopped: {exc}") from exc
        deadline = time.monotonic() + _REQUEST_TIMEOUT
        with self._cond:
            while token not in self._replies:
                remaining = deadline - time.monotonic()
                if not self._alive or remaining <= 0:
                    raise ZygoteError(
                        f"the worker environment {self.environment.id} stopped answering: {self._log_tail()}"
                    )
                self._cond.wait(remaining)
            return self._replies.pop(token)

    def fork(self, limits: Limits = Limits()) -> tuple[int, Channel, Captures]:
        """A new worker process under `limits`, the host's end of its channel, and the files
        that catch its output."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        captures = Captures()
        try:
            reply = self._request(("fork", next(self._tokens), tuple(limits)),
                                  [theirs.fileno(), *captures.fds()])
        except BaseException:
            captures.close()
            raise
        finally:
            theirs.close()
        return reply[2], Channel(ours, loads=load_answer), captures

    def preload(self, modules: list[str]) -> dict[str, str]:
        """Import `modules` in the fork server; returns the ones that failed, with why."""
        if not modules:
            return {}
        return self._request(("preload", next(self._tokens), list(modules)))[2]

    def describe_end(self) -> str:
        """How this fork server ended, in words (when it has)."""
        try:
            status = self.process.wait(_EXIT_REPORT_TIMEOUT)
        except TimeoutError:
            return f"the fork server of environment {self.environment.id} stopped answering"
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            return f"the fork server of environment {self.environment.id} was killed by {name}"
        return f"the fork server of environment {self.environment.id} exited with code {status}"

    def exit_status(self, pid: int, timeout: float = _EXIT_REPORT_TIMEOUT) -> int | None:
        """The wait status of worker `pid` once it has ended, or None if not reported in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while pid not in self._exits:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._alive:
                    return None
                self._cond.wait(remaining)
            return self._exits.pop(pid)

    def close(self) -> None:
        """Stop the fork server; it kills its workers when its control socket closes."""
        if not self._hello.is_set():
            self.process.kill()  # still importing, with no worker yet: nothing to wind down
        try:
            self._ctrl.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._ctrl.close()
        try:
            self.process.wait(5)
        except TimeoutError:
            self.process.kill()
            self.process.wait()
        # A fork server that was killed (here, or by anyone) could not remove its workers'
        # cgroups: we know its pid, so nothing waits for the next fork server's sweep.
        contain.end_fork_server_groups(self.process.pid)


class Captures:
    """The host's hold on the two files a worker's stdout and stderr go to (closed with it)."""

    __slots__ = ("out", "err")

    def __init__(self) -> None:
        # FileIO closes its descriptor when the worker is forgotten, however that happens.
        self.out = io.FileIO(capture_file(), "r", closefd=True)
        self.err = io.FileIO(capture_file(), "r", closefd=True)

    def fds(self) -> tuple[int, int]:
        """The descriptors, to hand to the fork server."""
        return self.out.fileno(), self.err.fileno()

    def printed(self) -> tuple[str, str]:
        """What the worker's current run has written so far (the worker empties the files
        after each run): read when the run ends without the worker's answer."""
        try:
            return read_capture(self.out.fileno()), read_capture(self.err.fileno())
        except (OSError, ValueError):
            return "", ""

    def close(self) -> None:
        """Let go of the files."""
        self.out.close()
        self.err.close()


class WorkerProcess:
    """A worker as the host sees it: its pid, channel, output files and the function digest
    it loaded."""

    __slots__ = ("pid", "channel", "digest", "last_used", "cold", "captures")

    def __init__(self, pid: int, channel: Channel, digest: str, cold: bool,
                 captures: Captures | None = None) -> None:
        self.pid = pid
        self.channel = channel
        self.digest = digest
        self.last_used = time.monotonic()
        self.cold = cold  # started on demand: its first run waited for it (a cold start)
        self.captures = captures

    def printed(self) -> tuple[str, str]:
        """(stdout, stderr) of the run it was killed in, as far as it got."""
        return self.captures.printed() if self.captures is not None else ("", "")

    def kill(self) -> None:
        """End the worker now (SIGKILL, to its whole process group) and close the channel."""
        _kill_group(self.pid)
        self.channel.close()

    def stop(self) -> None:
        """End an idle worker politely: closing its channel makes it return."""
        self.channel.close()

    def interrupt(self) -> None:
        """SIGKILL, leaving the channel to the thread reading it (which sees it close)."""
        _kill_group(self.pid)


def _kill_group(pid: int) -> None:
    """SIGKILL a worker and the processes of its group (a worker leads a session of its own;
    its fork server ends what escaped the group once it sees the worker end)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def describe_exit(status: int | None) -> str:
    """Why a worker process ended, in words."""
    if status is None:
        return "the worker process ended unexpectedly"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = " (out of memory?)" if number == signal.SIGKILL else ""
        return f"the worker process was killed by {name}{hint}"
    if os.WIFEXITED(status):
        return f"the worker process exited with code {os.WEXITSTATUS(status)}"
    return f"the worker process ended (wait status {status})"


class ProcessPool(WorkerPool):
    """A function's worker processes, forked from its environment's fork server."""

    def __init__(self, zygote: Zygote, function: Function, source: FunctionSource,
                 limits: Limits = Limits(), revive: Callable[[], Zygote] | None = None) -> None:
        self.zygote = zygote
        self.limits = limits
        self._revive = revive  # a fork server in place of one that died
        super().__init__(function, _load_message(function, source))

    def _start_worker(self, load: bytes, digest: str, cold: bool) -> WorkerProcess:
        if not self.zygote.alive and self._revive is not None:
            self.zygote = self._revive()
        pid, channel, captures = self.zygote.fork(self.limits)
        channel.send_bytes(load)
        return WorkerProcess(pid, channel, digest, cold, captures)


def _load_message(function: Function, source: FunctionSource) -> bytes:
    """The first message a new worker gets: the packaged function and how to run it."""
    return pickle.dumps(("load", source.payload, {
        "name": function.name,
        "convention": source.convention,
        "memory": function.resources.get("memory"),
        "origins": source.origins,
        "sources": source.sources,
        "code": source.code,
        "filename": source.filename,
        "handler": source.handler,
    }), protocol=5)


class LocalDriver(PooledDriver):
    """Worker processes on this machine, forked from a per-environment fork server."""

    name = "local"
    runs = Runs.ENVIRONMENT

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._zygotes: dict[str, Zygote] = {}
        try:
            self.limits = Limits.from_options(self.options)
        except ValueError as exc:
            raise InvalidRequestError(f"plugin_options['local']: {exc}") from None
        # Starting a fork server takes tens of ms: under a lock of its own, so that runs
        # (which take self._lock) never wait for one.
        self._zygote_lock = threading.Lock()
        self._zygotes_closed = False
        self._spinning = threading.Lock()  # held by the one thread that may spin
        self._spin = Spin(_SPIN_FOR_ANSWER)  # used only under self._spinning

    def _zygote(self, environment: Environment, started: ForkServerProcess | None = None) -> Zygote:
        """The environment's fork server: the running one, else `started` if it is the one
        wanted, else a new one. `started` is closed when it is not used."""
        try:
            with self._zygote_lock:
                if self._zygotes_closed:
                    raise ZygoteError("the local driver is closed")
                zygote = self._zygotes.get(environment.id)
                if zygote is not None and zygote.alive:
                    return zygote
                if zygote is not None:
                    zygote.close()
                path = fork_server_log(self.settings.home, environment.id)
                if started is not None and started.serves(environment.python, environment.id, path):
                    zygote, started = Zygote(environment, path, started), None
                else:
                    zygote = Zygote(environment, path)
                zygote.on_exit = self._fork_server_ended
                self._zygotes[environment.id] = zygote
                return zygote
        finally:
            if started is not None:
                started.close()

    def _revived(self, environment: Environment, modules: list[str]) -> Zygote:
        """The environment's fork server, started anew if it died, with `modules` imported."""
        zygote = self._zygote(environment)
        zygote.preload(modules)
        return zygote

    def _fork_server_ended(self, zygote: Zygote) -> None:
        """Its workers died with it (they are killed when their parent dies): forget the idle
        ones, so that the next runs start new workers instead of failing on dead ones."""
        with self._lock:
            pools = [pool for pool in self._pools.values() if pool.zygote is zygote]
        for pool in pools:
            pool.drop_idle()

    def prestart(self, artifact: Environment, started: ForkServerProcess | None = None) -> None:
        """Start the environment's fork server now, without waiting for it (unless the option
        `prestart` is false), or adopt `started`: the first deploy then finds it up, or nearly."""
        if self.options.get("prestart", True):
            self._zygote(artifact, started)
        elif started is not None:
            started.close()

    def deploy(self, function: Function, source: FunctionSource, artifact: Environment,
               progress: Progress | None = None) -> None:
        zygote = self._zygote(artifact)
        zygote.ready()  # a fork server that cannot start fails the deploy, saying why
        failed = zygote.preload(source.modules)
        if progress and failed:
            for module, why in failed.items():
                progress(f"note: {module} did not import ahead of time ({why})")
        key = (function.org, function.name)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None or pool.zygote is not zygote:
                if pool is not None:
                    pool.close()
                pool = self._pools[key] = ProcessPool(zygote, function, source, self.limits,
                                                      lambda: self._revived(artifact, source.modules))
            else:
                pool.configure(function, _load_message(function, source))
        pool.warm_up()

    def is_deployed(self, function: Function) -> bool:
        pool = self._pools.get((function.org, function.name))
        return pool is not None and pool.digest == function.digest and pool.zygote.alive

    def _run_batch(self, pool: ProcessPool, worker: WorkerProcess, jobs: list[Job], function: Function,
                   on_done: OutcomeSink | None) -> tuple[list[Outcome], bool]:
        """Send jobs to one worker; returns the outcomes it produced and whether it is still fit.

        When the worker dies or times out, the job it was running fails and the jobs after it
        are returned unrun (the caller gives them to another worker).
        """
        channel = worker.channel
        done: list[Outcome] = []
        sent = time.monotonic()
        try:
            channel.send(("run", jobs))
        except OSError:
            pass  # the worker is gone: the read below says why
        progress = sent
        spin = len(jobs) == 1 and self._spinning.acquire(blocking=False)
        try:
            return self._collect(pool, worker, jobs, function.timeout, progress, spin, done, on_done)
        finally:
            if spin:
                self._spinning.release()

    def _collect(self, pool: ProcessPool, worker: WorkerProcess, jobs: list[Job],
                 timeout: float | None, progress: float, spin: bool,
                 done: list[Outcome], on_done: OutcomeSink | None) -> tuple[list[Outcome], bool]:
        channel = worker.channel
        while len(done) < len(jobs):
            deadline = None if timeout is None else progress + timeout
            try:
                message = channel.recv(deadline, self._spin if spin else None)
            except TimeoutError:
                worker.kill()
                done.append(failed_outcome(jobs[len(done)], progress,
                                           f"the run timed out after {_seconds(timeout)} and its worker was killed",
                                           worker.printed()))
                return done, False
            except (ChannelClosed, OSError):
                status = pool.zygote.exit_status(worker.pid)
                if status is None and not pool.zygote.alive:
                    cause = f"{pool.zygote.describe_end()}, and the worker process with it,"
                else:
                    cause = describe_exit(status)
                worker.kill()
                done.append(failed_outcome(jobs[len(done)], progress, f"{cause} during the run", worker.printed()))
                return done, False
            except pickle.UnpicklingError as exc:  # not an answer: the worker is not to be trusted
                worker.kill()
                done.append(failed_outcome(jobs[len(done)], progress,
                                           f"the worker process sent something other than outcomes: {exc}",
                                           worker.printed()))
                return done, False
            batch = message[1]
            fit = settle_batch(worker, batch)
            done.extend(batch)
            if on_done is not None and len(done) < len(jobs):  # execute() reports the last ones
                on_done(batch)
            progress = time.monotonic()
            if not fit:
                return done, False
        return done, True

    def close(self) -> None:
        try:
            self._close_pools()
        finally:
            with self._zygote_lock:
                self._zygotes_closed = True
                zygotes, self._zygotes = list(self._zygotes.values()), {}
            for zygote in zygotes:
                zygote.close()
            # Also the cgroups of fork servers that ended unseen (one that died while being
            # replaced, say): those of processes that are gone, whoever started them.
            contain.sweep_fork_server_groups()


def _seconds(value: float) -> str:
    return f"{value:g}s"


__all__ = ["LocalDriver", "ProcessPool", "Zygote", "describe_exit"]
