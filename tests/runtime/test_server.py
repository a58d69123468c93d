"""The function runtime server (the image entrypoint) as a real process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cloudpickle
import pytest

from dispatch_kernel.packaging import package
from dispatch_kernel.images.services import free_port
from dispatch_kernel.runtime.protocol import Job
from dispatch_kernel.runtime.server import EXIT_TIMED_OUT, PICKLE_TYPE, duration, write_function_file

REPO = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, tmp_path: Path, fn, memory: int | None = None, **environment: str) -> None:
        path = tmp_path / "function.pkl"
        if isinstance(fn, bytes):  # a payload that does not load
            write_function_file(str(path), fn, name="broken", convention="plain")
        else:
            source = package(fn)
            write_function_file(str(path), source.payload, name=source.handler,
                                convention=source.convention, memory=memory,
                                origins=source.origins, sources=source.sources)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1", "PYTHONPATH": str(REPO), **environment}
        self.process = subprocess.Popen([sys.executable, "-m", "dispatch_kernel.runtime.server", str(path)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.get("/healthz")[0] in (200, 503):
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.process.stdout.read()!r}")
            time.sleep(0.05)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + "/", data=body, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def run(self, request) -> dict:
        status, body = self.post(json.dumps(request).encode())
        assert status == 200
        return json.loads(body)

    def jobs(self, jobs: list[Job]):
        status, body = self.post(pickle.dumps(jobs), PICKLE_TYPE)
        assert status == 200
        return pickle.loads(body)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(fn, memory=None, **environment) -> Server:
        server = Server(tmp_path, fn, memory, **environment)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def add(x, y):
    print("adding", x, y)
    os.write(2, b"from fd 2\n")
    return x + y


def handle(ctx, payload):
    ctx.logger.info("hello %s", payload["name"])
    return {"greeting": f"hello {payload['name']}", "run": ctx.run_id,
            "secret": ctx.secrets.get("s", {}).get("k"), "has_deadline": ctx.deadline is not None}


def fails(x):
    raise ValueError(f"bad {x}")


def test_health_and_of_watchdog_paths(serve):
    server = serve(add)
    assert server.get("/healthz") == (200, b"OK")
    assert server.get("/_/health") == (200, b"OK")
    assert server.get("/_/ready") == (200, b"OK")
    status, body = server.get("/nope")
    assert status == 404 and json.loads(body)["code"] == 404


def test_a_plain_function_runs_with_the_dispatch_contract(serve):
    server = serve(add)
    answer = server.run({"context": {}, "payload": [2, 3]})
    assert answer["payload"] == 5
    assert answer["context"]["error"] is None
    assert answer["context"]["logs"] == {"stdout": "adding 2 3\n", "stderr": "from fd 2\n"}
    assert server.run({"context": {}, "payload": {"x": 1, "y": 2}})["payload"] == 3
    # each run's logs are its own
    assert server.run({"context": {}, "payload": [1, 1]})["context"]["logs"]["stdout"] == "adding 1 1\n"


def test_a_dispatch_style_handler_gets_its_context(serve):
    server = serve(handle)
    answer = server.run({"context": {"run_id": "r1", "secrets": {"s": {"k": "v"}}, "timeout": 5},
                         "payload": {"name": "ada"}})
    assert answer["context"]["error"] is None
    assert answer["payload"] == {"greeting": "hello ada", "run": "r1", "secret": "v", "has_deadline": True}
    assert "hello ada" in answer["context"]["logs"]["stderr"]


def test_errors_are_typed(serve):
    server = serve(fails)
    error = server.run({"context": {}, "payload": 7})["context"]["error"]
    assert error["type"] == "FunctionError"
    assert error["message"] == "ValueError: bad 7"
    assert "raise ValueError" in error["stacktrace"]
    status, body = server.post(b"{not json")
    error = json.loads(body)["context"]["error"]
    assert status == 200 and error["type"] == "InputError"
    assert server.run([1])["context"]["error"]["type"] == "InputError"


def test_output_that_is_not_json_is_a_function_error(serve):
    server = serve(lambda: {1, 2})
    error = server.run({"context": {}, "payload": None})["context"]["error"]
    assert error["type"] == "FunctionError" and "not JSON" in error["message"]


def test_pickled_jobs_carry_any_python_value_in_batches(serve):
    server = serve(add)
    outcomes = server.jobs([Job("a", (1, 2), {}, None), Job("b", ((1,), (2,)), {}, None),
                            Job("c", ("x", 1), {}, None)])
    assert [o.run_id for o in outcomes] == ["a", "b", "c"]
    assert pickle.loads(outcomes[0].output) == 3
    assert pickle.loads(outcomes[1].output) == (1, 2)
    assert outcomes[1].stdout == "adding (1,) (2,)\n"
    assert outcomes[2].error.type == "FunctionError" and "TypeError" in outcomes[2].error.message


def test_a_memory_bomb_fails_its_run_and_retires_the_server(serve):
    def allocate(mib):
        return len(bytearray(mib * 1024 * 1024))

    server = serve(allocate, memory=128 * 1024 * 1024)
    assert server.run({"context": {}, "payload": [16]})["payload"] == 16 * 1024 * 1024
    error = server.run({"context": {}, "payload": [4096]})["context"]["error"]
    assert error["type"] == "SystemError" and "memory limit of 128 MiB" in error["message"]
    assert server.process.wait(10) == 3


def test_a_function_that_cannot_load_fails_every_run_and_is_unhealthy(serve):
    server = serve(cloudpickle.dumps(add)[:-3])
    error = server.run({"context": {}, "payload": [1, 2]})["context"]["error"]
    assert error["type"] == "SystemError" and "could not be loaded" in error["message"]
    assert server.get("/healthz")[0] == 503


def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_runs_lists_the_runs_the_server_holds(serve):
    import threading

    server = serve(nap)
    assert json.loads(server.get("/_/runs")[1]) == {"running": []}
    worker = threading.Thread(target=server.jobs, args=([Job("held-1", (1.5,), {}, None, False)],))
    worker.start()
    deadline = time.monotonic() + 20
    while json.loads(server.get("/_/runs")[1])["running"] != ["held-1"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(server.get("/_/runs")[1]) == {"running": ["held-1"]}
    worker.join(30)
    assert json.loads(server.get("/_/runs")[1]) == {"running": []}


def test_a_run_past_exec_timeout_ends_the_server_and_one_within_it_does_not(serve):
    server = serve(nap, exec_timeout="1s")
    outcome = server.jobs([Job("quick", (0.1,), {}, None, False)])[0]
    assert outcome.error is None and server.process.poll() is None
    request = urllib.request.Request(server.url + "/", data=pickle.dumps([Job("stuck", (600,), {}, None, False)]),
                                     headers={"Content-Type": PICKLE_TYPE})
    with pytest.raises(OSError):  # the connection ends with the server, past 1s and its grace
        urllib.request.urlopen(request, timeout=60).read()
    assert server.process.wait(30) == EXIT_TIMED_OUT
    assert b"run stuck outlived exec_timeout (1s): exiting" in server.process.stdout.read()


def test_durations_read_as_of_watchdog_reads_them():
    assert duration("10s") == 10 and duration("1m30s") == 90 and duration("500ms") == 0.5
    assert duration("2") == 2 and duration("1h") == 3600
    assert duration("") is None and duration("0s") is None and duration("0") is None
    for bad in ("ten", "10x", "s", "10s junk"):
        with pytest.raises(ValueError):
            duration(bad)
