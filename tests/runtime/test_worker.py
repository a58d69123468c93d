"""The worker loop in a real forked process, driven over a real socketpair the way a host does.

Each test forks the pytest process (the way the fork server forks a worker) and speaks the
protocol to it: ("load", payload, meta) once, then ("run", [Job, ...]) -> ("done", [Outcome, ...]),
reading the answers with protocol.load_answer as the host does. The worker points fds 1 and 2 at
capture files and may cap its address space, so it never runs in the pytest process itself.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dispatch_kernel.packaging import package
from dispatch_kernel.runtime import protocol, worker
from dispatch_kernel.runtime.channel import Channel, ChannelClosed
from dispatch_kernel.runtime.protocol import Job, Outcome

WAIT = 30.0  # seconds: generous, the machine is shared; a healthy worker answers in milliseconds


class Host:
    """The host's end of one worker process."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.channel = Channel(sock, loads=protocol.load_answer)
        self.status: int | None = None  # the wait status once reaped

    def run(self, *jobs: Job) -> list[Outcome]:
        """Send one batch and collect its outcomes, however many "done" messages they take."""
        self.channel.send(("run", list(jobs)))
        return self.collect(len(jobs))

    def collect(self, count: int) -> list[Outcome]:
        deadline = time.monotonic() + WAIT
        outcomes: list[Outcome] = []
        while len(outcomes) < count:
            kind, batch = self.channel.recv(deadline)
            assert kind == "done"
            outcomes.extend(batch)
        return outcomes

    def reap(self, timeout: float = WAIT) -> int:
        """The worker's exit code, waiting at most `timeout`; killed (and failed) past it."""
        if self.status is None:
            deadline = time.monotonic() + timeout
            while True:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.status = status
                    break
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    self.status = os.waitpid(self.pid, 0)[1]
                    pytest.fail(f"worker {self.pid} did not end within {timeout} s")
                time.sleep(0.01)
        return os.waitstatus_to_exitcode(self.status)


@pytest.fixture
def start():
    """start(payload, meta) -> Host: a forked worker that has been sent its "load" message."""
    hosts: list[Host] = []

    def _start(payload: bytes, meta: dict) -> Host:
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the worker: whatever happens, never return into pytest
            code = 1
            try:
                # Hold no host end, so each worker sees EOF when its own host closes.
                host_end.close()
                for other in hosts:
                    other.channel.close()
                worker.serve(worker_end.detach())
                code = 0
            finally:
                os._exit(code)
        worker_end.close()
        host = Host(pid, host_end)
        hosts.append(host)
        host.channel.send(("load", payload, meta))
        return host

    yield _start
    for host in hosts:
        host.channel.close()  # a worker ends when its host closes the channel
    for host in hosts:
        host.reap()


def plain(fn, **meta) -> tuple[bytes, dict]:
    """The load message's payload and meta for a function packaged as the notebook does it."""
    source = package(fn)
    return source.payload, {"name": source.handler, "convention": source.convention,
                            "origins": source.origins, "sources": source.sources, **meta}


def job(run_id: str, *args, context=None, json_output=False, **kwargs) -> Job:
    return Job(run_id, args, kwargs, context, json_output)


def frames(stacktrace: str) -> list[tuple[str, str]]:
    """(file name, function) of each frame of a formatted stack trace."""
    return [(Path(path).name, name) for path, name in re.findall(r'File "([^"]+)", line \d+, in (\S+)', stacktrace)]


# The functions below travel to the worker by value (cloudpickle), as notebook functions do.

def add(x, y):
    return x + y


def _check(x):
    if x < 0:
        raise ValueError(f"negative: {x}")


def checked_sqrt(x):
    _check(x)
    return math.sqrt(x)


def chatty(n):
    print("print", n)
    print("print to stderr", n, file=sys.stderr)
    os.write(1, b"fd 1\n")
    os.write(2, b"fd 2\n")
    # What a subprocess (or C code) writes goes to the fds too.
    subprocess.run(["echo", "subprocess"], check=True)
    return n


def shout(size):
    print("x" * size, end="")


def scribble(size):
    os.write(1, b"y" * size)


def odd_values():
    return {"set": {1, 2}, "nan": float("nan"), "list": [1, "a", None]}


def tuple_keys():
    return {(0, 0): "origin"}


def handle(ctx, payload):
    ctx.logger.info("hello %s", payload["name"])
    return {"run_id": ctx.run_id, "function": ctx.function, "password": ctx.secrets["db"]["password"],
            "deadline": ctx.deadline, "remaining": ctx.remaining}


def hog():
    return len(bytearray(1 << 30))  # 1 GiB, far past a 64 MiB cap


def returns_a_lock():
    return threading.Lock()


def exits():
    sys.exit(3)


def wait_for(path):
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return "went on"


def test_a_cloudpickled_function_loads_and_answers(start):
    host = start(*plain(add, name="adder"))
    [outcome] = host.run(job("r1", 2, 3))
    assert outcome.run_id == "r1"
    assert outcome.error is None
    assert pickle.loads(outcome.output) == 5
    assert outcome.started <= outcome.finished
    # The worker serves run after run, keyword arguments included.
    [outcome] = host.run(job("r2", "a", y="b"))
    assert pickle.loads(outcome.output) == "ab"


def test_source_text_is_executed_in_the_worker_and_its_handler_runs(start):
    code = "import math\n\nSCALE = 2\n\ndef area(r):\n    print('computing')\n    return round(SCALE * math.pi * r * r, 2)\n"
    host = start(b"", {"name": "area", "convention": "plain", "code": code,
                       "filename": "area.py", "handler": "area"})
    [outcome] = host.run(job("r1", 1))
    assert outcome.error is None
    assert pickle.loads(outcome.output) == 6.28
    assert outcome.stdout == "computing\n"


def test_a_failure_in_source_text_quotes_its_own_lines(start):
    # Deployed text has no file on disk: the worker's linecache is where its lines come from.
    code = "def handle(ctx, payload):\n    return 1 / payload\n"
    host = start(b"", {"name": "inverse", "convention": "dispatch", "code": code,
                       "filename": "inverse.py", "handler": "handle"})
    [outcome] = host.run(job("r1", 0))
    assert outcome.error.type == "FunctionError"
    assert outcome.error.message == "ZeroDivisionError: division by zero"
    assert frames(outcome.error.stacktrace) == [("inverse.py", "handle")]
    assert "return 1 / payload" in outcome.error.stacktrace


def test_a_raising_function_fails_with_its_own_stack_trace_only(start):
    host = start(*plain(checked_sqrt))
    [failed, fine] = host.run(job("r1", -4), job("r2", 4))
    assert failed.error.type == "FunctionError"
    assert failed.error.message == "ValueError: negative: -4"
    trace = failed.error.stacktrace
    assert trace.startswith("Traceback (most recent call last):")
    # The user's frames, under this file's name, and none of the worker's own.
    assert frames(trace) == [("test_worker.py", "checked_sqrt"), ("test_worker.py", "_check")]
    assert worker.__file__ not in trace
    assert 'raise ValueError(f"negative: {x}")' in trace
    assert trace.rstrip().endswith("ValueError: negative: -4")
    # A failure costs the worker nothing: the next job in the batch still runs.
    assert fine.error is None and pickle.loads(fine.output) == 2.0


def test_sys_exit_in_a_function_fails_the_run_not_the_worker(start):
    host = start(*plain(exits))
    [outcome] = host.run(job("r1"))
    assert (outcome.error.type, outcome.error.message) == ("FunctionError", "SystemExit: 3")
    [outcome] = host.run(job("r2"))
    assert outcome.error.message == "SystemExit: 3"  # it is still there to answer


def test_print_and_direct_writes_to_fds_1_and_2_land_in_the_runs_logs(start):
    host = start(*plain(chatty))
    [first] = host.run(job("r1", 1))
    assert first.error is None
    assert first.stdout == "print 1\nfd 1\nsubprocess\n"
    assert first.stderr == "print to stderr 1\nfd 2\n"
    # Each run's logs are its own: nothing of the first run shows up again.
    [second] = host.run(job("r2", 2))
    assert second.stdout == "print 2\nfd 1\nsubprocess\n"
    assert second.stderr == "print to stderr 2\nfd 2\n"


def test_printed_output_past_the_log_limit_is_clipped_with_a_note(start):
    host = start(*plain(shout))
    [outcome] = host.run(job("r1", worker.LOG_LIMIT + 10))
    assert outcome.stdout == "x" * worker.LOG_LIMIT + "\n[... 10 more characters dropped]\n"


def test_fd_output_past_the_log_limit_says_how_much_was_dropped(start):
    host = start(*plain(scribble))
    [outcome] = host.run(job("r1", worker.LOG_LIMIT + 10))
    assert outcome.stdout == "y" * worker.LOG_LIMIT + "\n[... 10 more characters dropped]\n"


def test_json_output_is_strict_json_and_a_pickle_otherwise(start):
    host = start(*plain(odd_values))
    as_json, as_pickle = host.run(job("r1", json_output=True), job("r2"))

    def bare_constant(name):  # NaN, Infinity: what Python writes and other parsers refuse
        pytest.fail(f"not strict JSON: bare {name}")

    assert json.loads(as_json.output.decode(), parse_constant=bare_constant) == {
        "set": {"$python": "builtins.set", "repr": "{1, 2}"},
        "nan": {"$python": "builtins.float", "repr": "nan"},
        "list": [1, "a", None],
    }
    value = pickle.loads(as_pickle.output)
    assert value["set"] == {1, 2} and math.isnan(value["nan"]) and value["list"] == [1, "a", None]


def test_json_output_of_a_dict_with_tuple_keys_still_succeeds(start):
    host = start(*plain(tuple_keys))
    [outcome] = host.run(job("r1", json_output=True))
    assert outcome.error is None, outcome.error
    json.loads(outcome.output.decode())


def test_an_output_that_cannot_be_pickled_fails_with_a_clear_message(start):
    host = start(*plain(returns_a_lock))
    [outcome] = host.run(job("r1"))
    assert outcome.error.type == "FunctionError"
    assert outcome.error.message.startswith("the function returned a lock that cannot be pickled")


def test_a_dispatch_handler_gets_run_id_secrets_deadline_and_logger(start):
    host = start(*plain(handle, name="greeter"))
    secrets = {"db": {"password": "hunter2"}}
    limited, unlimited = host.run(
        job("r1", {"name": "ada"}, context={"secrets": secrets, "timeout": 30}),
        job("r2", {"name": "bob"}, context={"secrets": secrets}),
    )
    assert limited.error is None, limited.error
    answer = pickle.loads(limited.output)
    assert answer["run_id"] == "r1" and answer["function"] == "greeter"
    assert answer["password"] == "hunter2"
    # The deadline counts from the run's start, in time.time() like Outcome.started.
    assert answer["deadline"] == pytest.approx(limited.started + 30)
    assert 0 < answer["remaining"] <= 30
    assert "hello ada" in limited.stderr  # ctx.logger writes to the run's own stderr
    answer = pickle.loads(unlimited.output)
    assert answer["run_id"] == "r2" and answer["deadline"] is None and answer["remaining"] is None
    assert "hello bob" in unlimited.stderr and "ada" not in unlimited.stderr


# A pickle naming a module the worker's environment lacks (protocol 0's GLOBAL opcode).
MISSING_MODULE = b"cno_such_module_for_dispatch\nfn\n."


@pytest.mark.parametrize("payload, meta, why", [
    (MISSING_MODULE, {"name": "f", "convention": "plain"},
     "ModuleNotFoundError: No module named 'no_such_module_for_dispatch'"),
    (b"", {"name": "f", "convention": "plain", "code": "def other():\n    pass\n",
           "filename": "f.py", "handler": "f"},
     "HandlerError: f.py defines no 'f'"),
    (b"", {"name": "f", "convention": "plain", "code": "def f(:\n", "filename": "f.py", "handler": "f"},
     "SyntaxError: "),
], ids=["missing-module", "missing-handler", "syntax-error"])
def test_a_function_that_cannot_be_loaded_fails_every_run_saying_why(start, payload, meta, why):
    host = start(payload, meta)
    outcomes = host.run(job("r1")) + host.run(job("r2"), job("r3"))
    assert [o.run_id for o in outcomes] == ["r1", "r2", "r3"]
    for outcome in outcomes:
        assert outcome.output is None
        assert outcome.error.type == "SystemError"
        assert outcome.error.message.startswith(
            f"the function could not be loaded in its environment: {why}")
    host.channel.close()
    assert host.reap() == 0  # and it still ends when its host lets go


def test_a_run_past_its_memory_limit_is_a_system_error_and_the_worker_retires(start):
    host = start(*plain(hog, memory=64 << 20))
    [outcome] = host.run(job("r1"))
    assert outcome.error.type == "SystemError"
    assert outcome.error.message == "the run exceeded its memory limit of 64 MiB"
    # A process that hit its cap is not trusted with more runs: it answers, then ends.
    with pytest.raises(ChannelClosed):
        host.channel.recv(time.monotonic() + WAIT)
    assert host.reap() == 0


def test_a_batch_of_quick_jobs_is_answered_in_full_and_in_order(start):
    host = start(*plain(add))
    jobs = [job(f"r{i:03d}", i, i) for i in range(200)]
    outcomes = host.run(*jobs)
    assert [o.run_id for o in outcomes] == [j.run_id for j in jobs]
    assert [pickle.loads(o.output) for o in outcomes] == [2 * i for i in range(200)]


def test_a_slow_job_does_not_hold_back_the_answers_before_it(start, tmp_path):
    host = start(*plain(wait_for))
    go = tmp_path / "go"
    # The last job waits until the host has the first two answers: were they held back
    # until the batch ends, this would wait out the deadline instead.
    host.channel.send(("run", [job("r1", str(tmp_path)), job("r2", str(tmp_path)), job("r3", str(go))]))
    first = host.collect(2)
    assert [o.run_id for o in first] == ["r1", "r2"]
    go.touch()
    [last] = host.collect(1)
    assert last.run_id == "r3" and pickle.loads(last.output) == "went on"


def test_closing_the_channel_ends_the_worker(start):
    host = start(*plain(add))
    assert pickle.loads(host.run(job("r1", 1, 1))[0].output) == 2
    host.channel.close()
    assert host.reap() == 0
