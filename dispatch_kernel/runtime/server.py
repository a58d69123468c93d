"""The function runtime server: the entrypoint of a function's image.

    python -m dispatch_kernel.runtime.server [FUNCTION_FILE]

It loads one function (a pickle written at build time, by default /dispatch/function.pkl or
$DISPATCH_FUNCTION) and answers over HTTP on $PORT (default 8080), binding $HOST (default
0.0.0.0):

- ``POST /`` with Dispatch's function runtime contract, JSON in and out::

      {"context": {...}, "payload": ...}
      -> {"context": {"error": null | {"type", "message", "stacktrace"},
                      "logs": {"stdout": "...", "stderr": "..."}},
          "payload": ...}

  A handle(ctx, payload) function gets the payload; a plain function's arguments come from the
  payload by protocol.arguments, the rule the core uses too: a list is its positional
  arguments, an object its keyword arguments ({"args", "kwargs"} for both) and anything else
  its one argument.
- ``POST /`` with Content-Type ``application/vnd.dispatch.jobs+pickle``: a pickled list of Jobs
  in, a pickled list of Outcomes out. The container driver speaks this, so Python callers may
  pass any picklable value and a map() travels in batches.
- ``GET /healthz``, and of-watchdog's http-mode paths ``GET /_/health`` and ``GET /_/ready``,
  so the same image can run under OpenFaaS.
- ``GET /_/runs``: ``{"running": [run ids]}``, the runs this server holds (running or waiting
  for the one before them), so that a driver can find the pod of a run it must stop.

Runs happen one at a time in this process, with the local worker's capture of stdout and
stderr (Python's and the file descriptors') and its typed errors. A run that exhausts the
memory limit ($DISPATCH_MEMORY bytes, or the one in the function file) is answered with a
SystemError and then the server exits, as a local worker does: the engine restarts nothing,
the driver starts a new container. A run's timeout is given to the function as its deadline
(ctx.deadline) but enforced outside: the container driver kills the container, the kubernetes
driver deletes the pod. Under OpenFaaS nothing outside can end one replica's run (of-watchdog,
which this server stands in for, only gives up on the request), so when $exec_timeout is set
(of-watchdog's variable, which the openfaas driver sets) a run past it ends this server (exit
124) a moment after the caller has given up, and the provider restarts the container instead of
leaving it busy. Only the standard library and cloudpickle are used.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .protocol import Failure, Job, Outcome, arguments
from .worker import Worker, _describe, _limit_memory, _user_traceback, load_function

DEFAULT_PORT = 8080
DEFAULT_FUNCTION_FILE = "/dispatch/function.pkl"
PICKLE_TYPE = "application/vnd.dispatch.jobs+pickle"
HEALTH_PATHS = ("/healthz", "/_/health")
READY_PATH = "/_/ready"
RUNS_PATH = "/_/runs"
EXIT_TIMED_OUT = 124  # a run outlived $exec_timeout: the server ended itself
EXEC_TIMEOUT_GRACE = 1.0  # seconds past exec_timeout: the caller's own timeout fires first
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def duration(text: str) -> float | None:
    """Seconds in a Go duration as of-watchdog reads its timeouts ("10s", "1m30s", "500ms"; a
    bare number is seconds); None for "" or "0" (no limit), ValueError for anything else."""
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"not a duration: {text!r}") from None
        factor = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        seconds = sum(float(n) * factor[u] for n, u in parts)
    return seconds or None


def function_file(payload: bytes, *, name: str, convention: str, memory: int | None = None,
                  origins: dict | None = None, sources: dict | None = None, code: str = "",
                  filename: str = "", handler: str = "") -> bytes:
    """What the server loads: the pickled function (or its source text and handler) and how
    to call it (deterministic bytes)."""
    meta = {"name": name, "convention": convention, "memory": memory,
            "origins": dict(sorted((origins or {}).items())),
            "sources": dict(sorted((sources or {}).items())),
            "code": code, "filename": filename, "handler": handler}
    return pickle.dumps({"payload": payload, "meta": meta}, protocol=5)


def write_function_file(path: str, payload: bytes, **meta: Any) -> None:
    """Write `function_file(payload, **meta)` to `path`."""
    with open(path, "wb") as file:
        file.write(function_file(payload, **meta))


class FunctionRuntime:
    """One loaded function and the worker logic that runs it; runs are serialized."""

    def __init__(self, payload: bytes, meta: dict[str, Any], memory: int | None = None,
                 exec_timeout: float | None = None) -> None:
        self.meta = meta
        self.exec_timeout = exec_timeout
        self.name = meta.get("name", "function")
        self.convention = meta.get("convention", "plain")
        self.memory = memory if memory is not None else meta.get("memory")
        self.load_error: Failure | None = None
        fn = None
        try:
            fn = load_function(payload, meta)
        except BaseException as exc:  # every run fails the same way; the caller sees why
            self.load_error = Failure(
                "SystemError", f"the function could not be loaded in its image: {_describe(exc)}",
                _user_traceback(exc))
        self._lock = threading.Lock()
        self._lock_holding = threading.Lock()
        self.busy = False
        self.holding: dict[str, int] = {}  # run id -> how many requests hold it (GET /_/runs)
        self.retiring = False  # a run hit the memory limit: answer it, then exit
        # The server's own log keeps the original stderr; fds 1 and 2 are captured per run.
        self.log = os.fdopen(os.dup(2), "w", buffering=1)
        self.worker = Worker(None, fn, self.name, self.convention, self.memory)  # type: ignore[arg-type]
        _limit_memory(self.memory)

    @classmethod
    def from_file(cls, path: str) -> FunctionRuntime:
        with open(path, "rb") as file:
            spec = pickle.load(file)
        memory = os.environ.get("DISPATCH_MEMORY")
        return cls(spec["payload"], spec["meta"], int(memory) if memory else None,
                   duration(os.environ.get("exec_timeout", "")))

    def run_jobs(self, jobs: list[Job]) -> list[Outcome]:
        """Run jobs in order; after one that leaves the process unfit, the rest are not run."""
        ids = [job.run_id for job in jobs if job.run_id]
        with self._lock_holding:
            for run_id in ids:
                self.holding[run_id] = self.holding.get(run_id, 0) + 1
        try:
            return self._run_jobs(jobs)
        finally:
            with self._lock_holding:
                for run_id in ids:
                    self.holding[run_id] -= 1
                    if not self.holding[run_id]:
                        del self.holding[run_id]

    def running(self) -> list[str]:
        """The run ids of the jobs this server holds now, running or waiting their turn."""
        with self._lock_holding:
            return sorted(self.holding)

    def _run_jobs(self, jobs: list[Job]) -> list[Outcome]:
        with self._lock:
            self.busy = True
            try:
                outcomes = []
                for job in jobs:
                    if self.load_error is not None:
                        now = time.time()
                        outcomes.append(Outcome(job.run_id, None, self.load_error, "", "", now, now, False))
                        continue
                    outcome, fatal = self._run_watched(job)
                    outcomes.append(outcome)
                    if fatal:
                        self.retiring = True
                        break
                return outcomes
            finally:
                self.busy = False

    def _run_watched(self, job: Job) -> tuple[Outcome, bool]:
        if not self.exec_timeout:
            return self.worker.run(job)
        timer = threading.Timer(self.exec_timeout + EXEC_TIMEOUT_GRACE, self._overran, (job.run_id,))
        timer.daemon = True
        timer.start()
        try:
            return self.worker.run(job)
        finally:
            timer.cancel()

    def _overran(self, run_id: str) -> None:
        # A thread cannot be stopped; only ending the process frees this replica for others.
        print(f"dispatch runtime: run {run_id} outlived exec_timeout ({self.exec_timeout:g}s): exiting",
              file=self.log, flush=True)
        os._exit(EXIT_TIMED_OUT)

    def run_json(self, request: Any) -> dict[str, Any]:
        """Dispatch's runtime contract: {context, payload} in, {context: {error, logs}, payload} out."""
        if not isinstance(request, dict):
            return _answer(Failure("InputError", "the request must be a JSON object with context and payload"))
        context = request.get("context") or {}
        if not isinstance(context, dict):
            return _answer(Failure("InputError", "context must be a JSON object"))
        args, kwargs = arguments(self.convention, request.get("payload"))
        run_id = str(context.get("run_id") or context.get("id") or "")
        job = Job(run_id, args, kwargs, {
            "secrets": context.get("secrets") or {},
            "event": context.get("event"),
            "http": context.get("http"),
            "timeout": context.get("timeout"),
        })
        outcome = self.run_jobs([job])[0]
        logs = {"stdout": outcome.stdout, "stderr": outcome.stderr}
        if outcome.error is not None:
            return _answer(outcome.error, logs)
        value = pickle.loads(outcome.output)
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            return _answer(Failure("FunctionError", f"the output is not JSON: {exc}"), logs)
        return _answer(None, logs, value)


def _answer(error: Failure | None, logs: dict[str, str] | None = None, payload: Any = None) -> dict[str, Any]:
    return {
        "context": {
            "error": None if error is None else {"type": error.type, "message": error.message,
                                                 "stacktrace": error.stacktrace},
            "logs": logs or {"stdout": "", "stderr": ""},
        },
        "payload": payload,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "dispatch-runtime/1"
    protocol_version = "HTTP/1.1"  # keep-alive: a warm run costs one request on an open socket
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

    @property
    def runtime(self) -> FunctionRuntime:
        return self.server.runtime  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the access log would be noise in every container's log

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        runtime = self.runtime
        if path in HEALTH_PATHS:
            healthy = runtime.load_error is None and not runtime.retiring
            self._send(200 if healthy else 503, b"OK" if healthy else b"unhealthy", "text/plain")
        elif path == READY_PATH:
            ready = runtime.load_error is None and not runtime.retiring and not runtime.busy
            self._send(200 if ready else 503, b"OK" if ready else b"busy", "text/plain")
        elif path == RUNS_PATH:
            self._json(200, {"running": runtime.running()})
        else:
            self._json(404, {"code": 404, "message": f"no such path: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != "/":
            self._json(404, {"code": 404, "message": f"no such path: {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        runtime = self.runtime
        if self.headers.get("Content-Type", "").split(";")[0].strip() == PICKLE_TYPE:
            jobs = pickle.loads(body)
            outcomes = runtime.run_jobs(jobs)
            self._send(200, pickle.dumps(outcomes, protocol=5), PICKLE_TYPE)
        else:
            try:
                request = json.loads(body or b"{}")
            except ValueError as exc:
                answer = _answer(Failure("InputError", f"the request is not JSON: {exc}"))
            else:
                answer = runtime.run_json(request)
            self._json(200, answer)
        if runtime.retiring:
            self.wfile.flush()
            self.close_connection = True
            threading.Thread(target=self.server.shutdown, daemon=True).start()


def make_server(runtime: FunctionRuntime, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """An HTTP server for `runtime` (not yet serving)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.runtime = runtime  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else os.environ.get("DISPATCH_FUNCTION", DEFAULT_FUNCTION_FILE)
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    host = os.environ.get("HOST") or "0.0.0.0"
    try:
        runtime = FunctionRuntime.from_file(path)
    except Exception:
        traceback.print_exc()
        return 2
    server = make_server(runtime, host, port)
    print(f"dispatch runtime: {runtime.name} listening on {host}:{port}", file=runtime.log, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 3 if runtime.retiring else 0


if __name__ == "__main__":
    sys.exit(main())
