"""The API gateway: a trivial function behind a public GET route, through the standalone
`dispatch gateway` and through the Jupyter extension's `dispatch/http/`.

The same clients as bench/server.py (raw HTTP/1.1 on keep-alive connections, from asyncio)
measure p50 with 1 client and requests/s with 16. The baseline is a bare tornado handler in its
own process that answers every GET with the same JSON, measured by the same clients in the same
run: the gap is what routing, the run (recorded twice, a warm worker's round trip) and the
answer cost. Every process listens on 127.0.0.1 only and is stopped at the end.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel.images.services import free_port, stop_process

from . import Result, p50, p99
from .server import BASE_URL, _client, _start_jupyter

CLIENTS = 16
PATH = "default/inc/1"

_BARE_TORNADO = r"""
import asyncio, sys
import tornado.web

class Inc(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(b"2")

async def main():
    app = tornado.web.Application([(r"/default/inc/1", Inc)])
    app.listen(int(sys.argv[1]), address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def inc(x: str) -> int:
    """The trivial function: everything measured is overhead (x comes from the path, as text)."""
    return int(x) + 1


def _start_gateway(home: Path, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "dispatch"), "gateway", "--port", str(port), "--home", str(home)]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPATCH_URL", "DISPATCH_TOKEN")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dispatch gateway exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/" + PATH)
            if connection.getresponse().status == 200:
                connection.close()
                return process
            connection.close()
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(process, grace=20)
    raise RuntimeError("dispatch gateway did not answer within 60s")


def _load(port: int, prefix: str, total: int, clients: int = CLIENTS) -> tuple[list[float], float]:
    """Latencies of `total` GETs from `clients` keep-alive connections, and requests/s."""
    request = f"GET {prefix}{PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies: list[float] = []

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*[_client(port, request, total // clients, latencies) for _ in range(clients)])
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return latencies, len(latencies) / elapsed


def _measure(targets: dict[str, tuple[int, str]], total: int, rounds: int) -> dict[str, tuple[list[float], float, list[float]]]:
    """Per target: latencies with 16 clients, requests/s (the median of the rounds) and
    latencies with 1 client. The targets take turns, round after round, so that a burst of
    load from elsewhere on the machine falls on all of them alike rather than on one."""
    for port, prefix in targets.values():
        _load(port, prefix, CLIENTS * 20)  # warm: workers, connections, caches
    found: dict[str, tuple[list[float], list[float], list[float]]] = {name: ([], [], []) for name in targets}
    for _ in range(rounds):
        for name, (port, prefix) in targets.items():
            latencies, rate = _load(port, prefix, total // rounds)
            alone, _ = _load(port, prefix, total // rounds // 8, clients=1)
            found[name][0].extend(latencies)
            found[name][1].append(rate)
            found[name][2].extend(alone)
    return {name: (latencies, p50(rates), alone) for name, (latencies, rates, alone) in found.items()}


def bench_gateway(quick: bool) -> list[Result]:
    """GET routes through the standalone gateway and the extension vs a bare tornado handler."""
    total = 800 if quick else 6400
    home = Path(tempfile.mkdtemp(prefix="dk-bench-gateway-"))
    token = secrets.token_hex(16)
    jupyter_port, gateway_port, bare_port = free_port(), free_port(), free_port()
    bare = jupyter = gateway = None
    try:
        bare = subprocess.Popen([sys.executable, "-c", _BARE_TORNADO, str(bare_port)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert bare.stdout is not None
        if bare.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bare tornado server did not start")
        jupyter = _start_jupyter(home, jupyter_port, token)
        with dk.connect(f"http://127.0.0.1:{jupyter_port}{BASE_URL}", token=token) as client:
            client.deploy(inc, min_workers=2, max_workers=2)
            client.create_api("inc", "inc", paths=["/inc/{x}"])
        gateway = _start_gateway(home, gateway_port)
        measured = _measure({"bare": (bare_port, "/"), "standalone": (gateway_port, "/"),
                             "extension": (jupyter_port, f"{BASE_URL}dispatch/http/")}, total, 2 if quick else 5)
    finally:
        for process in (gateway, jupyter, bare):
            stop_process(process, grace=20)
        shutil.rmtree(home, ignore_errors=True)

    bare_latencies, bare_rate, bare_alone = measured["bare"]
    latencies, rate, alone = measured["standalone"]
    ext_latencies, ext_rate, ext_alone = measured["extension"]
    ms = 1e3
    share = rate / bare_rate if bare_rate else 0.0
    note = (f"{CLIENTS} clients, {len(latencies)} requests a target, in turns with the others (rates: the median "
            f"of the turns); p99 standalone {p99(latencies) * ms:.2f} ms, "
            f"extension {p99(ext_latencies) * ms:.2f} ms, bare tornado {p99(bare_latencies) * ms:.2f} ms; "
            f"standalone at {share:.0%} of the bare handler's rate; servers, workers and clients share the cores")
    return [
        Result("gateway", "standalone p50 ms, 1 client", p50(alone) * ms, "bare tornado handler",
               p50(bare_alone) * ms, "<= 0.5 ms", p50(alone) * ms <= 0.5, note),
        Result("gateway", "standalone req/s, 16 clients", rate, "bare tornado handler", bare_rate,
               ">= 0.60x baseline", share >= 0.6),
        Result("gateway", "extension p50 ms, 1 client", p50(ext_alone) * ms, "bare tornado handler",
               p50(bare_alone) * ms, "-", None),
        Result("gateway", "extension req/s, 16 clients", ext_rate, "bare tornado handler", bare_rate, "-", None),
    ]


BENCHMARKS = {"gateway": bench_gateway}
