"""REST through the Jupyter server: `POST runs` with wait for a trivial function.

16 clients, each on its own keep-alive connection, post runs back to back; the figure is the
p50 latency and the throughput. The clients send the token and, as a browser or a
requests.Session would, the login cookie the server set for it (dk.connect's client does too);
one more row shows clients that keep no cookies, to which Jupyter sets a new one on every
request. The baseline is a bare tornado handler in its own process that answers every POST
with the same run record, measured with the same clients in the same run: the gap is what
Jupyter's auth, the API handler and the run itself cost. Both servers listen on 127.0.0.1 only
and are stopped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel.images.services import free_port, stop_process

from . import Result, p50, p99

CLIENTS = 16
BASE_URL = "/bench/"

_BARE_TORNADO = r"""
import asyncio, sys
import tornado.web

BODY = sys.stdin.buffer.read()

class Runs(tornado.web.RequestHandler):
    def post(self):
        self.set_header("Content-Type", "application/json")
        self.finish(BODY)

async def main():
    app = tornado.web.Application([(r"/bench/dispatch/v1/runs", Runs)])
    app.listen(int(sys.argv[1]), address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def inc(x: int) -> int:
    """The trivial function: everything measured is overhead."""
    return x + 1


def _start_jupyter(home: Path, port: int, token: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A `jupyter dispatch` server on 127.0.0.1:`port` over `home`, once it answers (`env`:
    more variables, e.g. the store it uses)."""
    command = [
        os.path.join(os.path.dirname(sys.executable), "jupyter-dispatch"), "--allow-root", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.base_url={BASE_URL}",
        f"--ServerApp.root_dir={home}", f"--DispatchApp.home={home}", "--ServerApp.log_level=ERROR",
        *[f"--ServerApp.jpserver_extensions={name}=False"
          for name in ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals")],
    ]
    full_env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), **(env or {})}
    full_env.pop("DISPATCH_URL", None)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=full_env, cwd=home)
    deadline = time.monotonic() + 60
    request = urllib.request.Request(f"http://127.0.0.1:{port}{BASE_URL}dispatch/v1/functions",
                                     headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter-dispatch exited with {process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    stop_process(process, grace=20)
    raise RuntimeError("jupyter-dispatch did not answer within 60s")


async def _client(port: int, request: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            status = int(head.split(b" ", 2)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"POST runs answered {status}: {body[:300]!r}")
    finally:
        writer.close()


def _login_cookie(port: int, token: str) -> str:
    """The cookie a Jupyter server sets for a token's first request (name=value)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{BASE_URL}dispatch/v1/functions",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        cookie = response.headers.get("Set-Cookie")
    if not cookie:
        raise RuntimeError("the server set no login cookie")
    return cookie.split(";", 1)[0]


def _load(port: int, token: str, total: int, clients: int = CLIENTS,
          cookie: str | None = None) -> tuple[list[float], float]:
    """Latencies of `total` POSTs from `clients` connections, and the runs per second.
    With `cookie` every request carries it, as from a client that keeps cookies."""
    body = json.dumps({"function": "inc", "input": [1], "wait": True}).encode()
    cookie_header = f"Cookie: {cookie}\r\n" if cookie else ""
    request = (f"POST {BASE_URL}dispatch/v1/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: token {token}\r\n{cookie_header}Content-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*[_client(port, request, total // clients, latencies) for _ in range(clients)])
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return latencies, len(latencies) / elapsed


def bench_rest(quick: bool) -> list[Result]:
    """POST runs with wait through the Jupyter server vs a bare tornado handler."""
    total = 800 if quick else 4800
    home = Path(tempfile.mkdtemp(prefix="dk-bench-server-"))
    token = secrets.token_hex(16)
    jupyter_port, bare_port = free_port(), free_port()
    jupyter = _start_jupyter(home, jupyter_port, token)
    bare = None
    try:
        with dk.connect(f"http://127.0.0.1:{jupyter_port}{BASE_URL}", token=token) as client:
            client.deploy(inc, min_workers=2, max_workers=2)
            record = client.invoke("inc", [1]).to_dict()
        cookie = _login_cookie(jupyter_port, token)
        _load(jupyter_port, token, CLIENTS * 20, cookie=cookie)  # warm: workers, connections, caches
        latencies, rate = _load(jupyter_port, token, total, cookie=cookie)
        alone, _ = _load(jupyter_port, token, total // 8, clients=1, cookie=cookie)
        _, token_only_rate = _load(jupyter_port, token, total)

        bare = subprocess.Popen([sys.executable, "-c", _BARE_TORNADO, str(bare_port)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert bare.stdin is not None and bare.stdout is not None
        bare.stdin.write(json.dumps(record).encode())
        bare.stdin.close()
        if bare.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bare tornado server did not start")
        _load(bare_port, token, CLIENTS * 20, cookie=cookie)
        bare_latencies, bare_rate = _load(bare_port, token, total, cookie=cookie)
        bare_alone, _ = _load(bare_port, token, total // 8, clients=1, cookie=cookie)
        _, bare_token_only_rate = _load(bare_port, token, total)
    finally:
        stop_process(jupyter, grace=20)
        if bare is not None:
            stop_process(bare, grace=20)
        shutil.rmtree(home, ignore_errors=True)

    ms = 1e3
    note = (f"{CLIENTS} clients, {len(latencies)} runs; p99 {p99(latencies) * ms:.2f} ms "
            f"(bare tornado {p99(bare_latencies) * ms:.2f} ms); server, workers and clients share the cores")
    return [
        Result("rest", "p50 ms, 1 client", p50(alone) * ms, "bare tornado handler", p50(bare_alone) * ms,
               "<= 1 ms", p50(alone) * ms <= 1.0, note),
        # With 16 requests always in flight a request waits for the 15 others (Little's law):
        # p50 is about 16 / throughput, so the 1 ms goal is read as one client's p50 above.
        Result("rest", "p50 ms, 16 clients", p50(latencies) * ms, "bare tornado handler", p50(bare_latencies) * ms,
               "-", None, f"with {CLIENTS} in flight p50 is about {CLIENTS} / throughput "
               f"({CLIENTS / rate * ms:.1f} ms here): 1 ms would take {CLIENTS * 1000:,} runs/s"),
        Result("rest", "runs/s", rate, "bare tornado handler", bare_rate, ">= 2,000", rate >= 2000),
        Result("rest", "runs/s, no cookie jar", token_only_rate, "bare tornado handler", bare_token_only_rate,
               "-", None),
    ]


BENCHMARKS = {"rest": bench_rest}
