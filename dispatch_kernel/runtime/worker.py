"""The worker loop: load one function, then run jobs from the host until told to stop.

A worker is forked from the fork server of its environment, so everything the function imports
is usually in memory already. A run's output is caught in two files, one per stream: file
descriptors 1 and 2 point at them (so C code and subprocesses land there too), and during a run
sys.stdout and sys.stderr write through to them line by line. The host holds the same files:
when it kills a worker whose run timed out, was cancelled or crashed it, what the run printed
until then is still there to record.
"""

from __future__ import annotations

import linecache
import logging
import os
import pickle
import resource
import socket
import sys
import threading
import time
import traceback
import types
from typing import Any, Callable

import cloudpickle

from .capture import LOG_LIMIT, FdCapture
from .channel import Channel, ChannelClosed
from .closures import cell_is_filled
from .context import Context
from .encoding import strict_dumps
from .limits import Restorer
from .protocol import Failure, Job, Outcome
from .spin import Spin

FLUSH_INTERVAL = 0.001  # seconds: results of quick runs travel in batches, slow ones at once
HOLD_LIMIT = 0.005  # seconds a result may wait while a later run of its batch is still going
_WATCHER_STACK = 256 * 1024  # bytes: the outbox's thread counts against a run's memory cap
# After answering, poll for the next job a while before sleeping, yielding the CPU between
# polls: calls that follow each other closely (a client waiting on each answer through a
# server) then find the worker awake. Waking a process whose virtual CPU has gone idle cost
# about 400 µs on the 2-core VM we measure on, against about 70 µs once it is awake. The Spin
# polls only while jobs come that fast and nothing else wants the CPU (see runtime/spin.py).
SPIN_AFTER_ANSWER = 0.002


class _Outbox:
    """Results of a batch on their way to the host.

    Results of quick runs wait up to FLUSH_INTERVAL to travel together. A thread sends what
    has waited HOLD_LIMIT while a later run is still going, so a slow run does not hold back
    the answers of the quick ones before it; it wakes about once per HOLD_LIMIT at most.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._cond = threading.Condition()
        self._pending: list[Outcome] = []
        self._since = 0.0  # time.monotonic() of the oldest pending result
        self._watching = False  # the thread is in a timed wait: no need to wake it
        size = threading.stack_size(_WATCHER_STACK)
        try:
            threading.Thread(target=self._watch, name="dispatch-outbox", daemon=True).start()
        except RuntimeError:  # no room for a thread under a tight memory cap: flush at batch end
            pass
        finally:
            threading.stack_size(size)

    def put(self, outcome: Outcome) -> None:
        """Queue a result; send the queue once its oldest result has waited FLUSH_INTERVAL."""
        with self._cond:
            self._pending.append(outcome)
            if len(self._pending) == 1:
                self._since = time.monotonic()
                if not self._watching:
                    self._cond.notify()
            elif time.monotonic() - self._since >= FLUSH_INTERVAL:
                self._send()

    def flush(self) -> None:
        """Send whatever waits."""
        with self._cond:
            if self._pending:
                self._send()

    def _send(self) -> None:  # with the condition held: one sender at a time
        pending, self._pending = self._pending, []
        self._channel.send(("done", pending))

    def _watch(self) -> None:
        with self._cond:
            while True:
                if not self._pending:
                    self._watching = False
                    self._cond.wait()
                    continue
                self._watching = True
                due = self._since + HOLD_LIMIT - time.monotonic()
                if due > 0:
                    self._cond.wait(due)
                    continue
                try:
                    self._send()
                except OSError:  # the host is gone: end the channel, so the main thread ends too
                    self._pending = []
                    self._channel.close()


class _CurrentStderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is now, so ctx.logger lands in the run's log."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _limit_memory(limit: int | None) -> None:
    """Cap the address space at what is mapped now plus `limit` bytes."""
    if not limit:
        return
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + int(limit)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


class Worker:
    """Runs jobs for one function in this process."""

    def __init__(self, channel: Channel, fn: Callable[..., Any], name: str, convention: str,
                 memory_limit: int | None, captures: tuple[int, int] | None = None) -> None:
        self.channel = channel
        self.fn = fn
        self.name = name
        self.dispatch_style = convention == "dispatch"
        self.memory_limit = memory_limit
        given_out, given_err = captures or (None, None)
        self.fd_out = FdCapture(1, given_out)
        self.fd_err = FdCapture(2, given_err)
        self.logger = logging.getLogger("dispatch.function")
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(_CurrentStderrHandler())
        self.logger.propagate = False
        self.outbox: _Outbox | None = None  # made by serve()
        self.pid = os.getpid()
        self.restorer = Restorer()  # what this worker is now is what every run starts from

    def serve(self) -> None:
        """Answer "run" messages until the host closes the channel."""
        # Before any user code runs: the outbox sets a small stack size for its thread, which
        # is process-wide while it is set.
        self.outbox = _Outbox(self.channel)
        spin = Spin(SPIN_AFTER_ANSWER)
        while True:
            try:
                message = self.channel.recv(spin=spin, polite=True)
            except ChannelClosed:
                return
            if message[0] != "run":
                return
            if not self._run_batch(message[1]):
                return

    def _run_batch(self, jobs: list[Job]) -> bool:
        """Run jobs in order, sending results in batches; False when this worker must stop."""
        if len(jobs) == 1:
            outcome, fatal = self.run(jobs[0])
            self.channel.send(("done", [outcome]))
            self.restorer.restore_signals()
            return not fatal
        outbox = self.outbox
        if outbox is None:  # serve() makes it; a direct caller of _run_batch may not have
            outbox = self.outbox = _Outbox(self.channel)
        for job in jobs:
            outcome, fatal = self.run(job)
            outbox.put(outcome)
            self.restorer.restore_signals()
            if fatal:
                outbox.flush()
                return False
        outbox.flush()
        return True

    def run(self, job: Job) -> tuple[Outcome, bool]:
        """Run one job; the flag says whether the process is unfit for more runs."""
        out, err = self.fd_out.writer(), self.fd_err.writer()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        output: bytes | None = None
        failure: Failure | None = None
        fatal = False
        started = time.time()
        try:
            args = job.args
            if self.dispatch_style:
                args = (self._context(job, started), *args)
            try:
                value = self.fn(*args, **job.kwargs)
            finally:
                if os.getpid() != self.pid:
                    # A process the function forked came back here: it must never act as the
                    # worker (answer on its channel, take its next job).
                    os._exit(0)
            output = strict_dumps(value).encode() if job.json_output else _pickle_output(value)
        except MemoryError:
            # The state of a process that hit its cap is suspect: report, then retire.
            limit = self.memory_limit or 0
            failure = Failure("SystemError", f"the run exceeded its memory limit of {_mib(limit)}")
            fatal = True
        except _OutputNotPicklable as exc:
            failure = Failure("FunctionError", str(exc))
        except BaseException as exc:  # the function's failure, SystemExit included
            failure = Failure("FunctionError", _describe(exc), _user_traceback(exc))
        finally:
            sys.stdout, sys.stderr = saved
        try:
            for note in self.restorer.restore():
                err.write(f"[dispatch] after the run: {note}\n")
            if failure is not None and self.restorer.descriptors_nearly_exhausted():
                # What the run left open (in a global, say) would fail the next runs too: a
                # SystemError, so that the host retires this worker, as for its memory limit.
                limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                failure = Failure("SystemError", f"the run used up the {limit} file descriptors of its "
                                  f"worker ({failure.message}); the worker was retired")
                fatal = True
        except Exception as exc:  # the worker cannot vouch for itself: retire it
            err.write(f"[dispatch] after the run: could not clean up ({_describe(exc)}); worker retired\n")
            fatal = True
        finished = time.time()
        stdout, stderr = self.fd_out.take(), self.fd_err.take()
        return Outcome(job.run_id, output, failure, stdout, stderr, started,
                       finished, False), fatal

    def _context(self, job: Job, started: float) -> Context:
        context = job.context or {}
        timeout = context.get("timeout")
        return Context(
            run_id=job.run_id,
            function=self.name,
            secrets=context.get("secrets") or {},
            event=context.get("event"),
            http=context.get("http"),
            deadline=None if timeout is None else started + timeout,
            logger=self.logger,
        )


class _OutputNotPicklable(Exception):
    pass


def _pickle_output(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        pass
    try:
        return cloudpickle.dumps(value, protocol=5)
    except Exception as exc:
        raise _OutputNotPicklable(
            f"the function returned a {type(value).__name__} that cannot be pickled: {exc}"
        ) from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# cloudpickle names the file of every code object it rebuilds "<dynamic-code>".
_DYNAMIC_CODE = "<dynamic-code>"


def _restore_origins(fn: Any, origins: dict[tuple[str, int], str],
                     sources: dict[str, list[tuple[int, list[str]]]]) -> None:
    """Give the loaded functions back the file names they were written in, and make their
    text readable by linecache, so stack traces quote the right lines of the right cell."""
    for filename, spans in sources.items():
        lines = _lines(spans)
        if lines and not os.path.exists(filename):
            linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    seen: set[int] = set()
    todo = [fn]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or not isinstance(obj, types.FunctionType):
            if isinstance(obj, type) and id(obj) not in seen:
                seen.add(id(obj))
                todo.extend(vars(obj).values())
            continue
        seen.add(id(obj))
        code = obj.__code__
        if code.co_filename == _DYNAMIC_CODE:
            origin = origins.get((code.co_name, code.co_firstlineno))
            if origin:
                obj.__code__ = _renamed(code, origin)
        todo.extend(obj.__globals__.get(name) for name in code.co_names)
        todo.extend(cell.cell_contents for cell in obj.__closure__ or () if cell_is_filled(cell))


def _lines(spans: list[tuple[int, list[str]]]) -> list[str]:
    """A file's lines from (first line, lines) spans of it; the lines between are blank."""
    size = max((start + len(block) - 1 for start, block in spans), default=0)
    lines = ["\n"] * size
    for start, block in spans:
        lines[start - 1:start - 1 + len(block)] = block
    return lines


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _user_traceback(exc: BaseException) -> str:
    """The stack trace from the function's own frame on, without this module's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB"


class HandlerError(Exception):
    """Source text that runs but has no callable of the handler's name."""


def load_code(code: str, filename: str, handler: str) -> Callable[..., Any]:
    """Run source text as a fresh `__main__` module and return its function `handler`.

    This is where text deployed through REST, the CLI or a YAML file first runs: in a worker,
    never in the server that received it. The text is put in linecache so that stack traces
    quote it.
    """
    module = types.ModuleType("__main__")
    module.__file__ = filename
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    exec(compile(code, filename, "exec"), module.__dict__)
    fn = module.__dict__.get(handler)
    if fn is None:
        raise HandlerError(f"{filename} defines no {handler!r}")
    if not callable(fn):
        raise HandlerError(f"{filename}: {handler!r} is a {type(fn).__name__}, not a function")
    return fn


def load_function(payload: bytes, meta: dict[str, Any]) -> Callable[..., Any]:
    """The function a worker runs: its source text (`meta["code"]`), or the cloudpickle."""
    if meta.get("code"):
        return load_code(meta["code"], meta.get("filename") or "<source>", meta["handler"])
    fn = cloudpickle.loads(payload)
    _restore_origins(fn, meta.get("origins") or {}, meta.get("sources") or {})
    return fn


def serve(channel_fd: int, captures: tuple[int, int] | None = None) -> None:
    """Entry point in a freshly forked process: load the function, then serve runs, with its
    output caught in `captures` (files the host gave for stdout and stderr) or new files."""
    channel = Channel(socket.socket(fileno=channel_fd))
    try:
        _, payload, meta = channel.recv()
    except ChannelClosed:
        return
    try:
        fn = load_function(payload, meta)
    except BaseException as exc:
        # Every run this worker is given fails the same way; the host sees why.
        message = f"the function could not be loaded in its environment: {_describe(exc)}"
        trace = _user_traceback(exc)
        while True:
            try:
                kind, jobs = channel.recv()
            except ChannelClosed:
                return
            now = time.time()
            channel.send(("done", [Outcome(job.run_id, None, Failure("SystemError", message, trace),
                                           "", "", now, now, False) for job in jobs]))
    del payload
    _limit_memory(meta.get("memory"))
    Worker(channel, fn, meta["name"], meta["convention"], meta.get("memory"), captures).serve()
