"""Events: emit-to-start latency on the embedded (SQLite) bus and through NATS JetStream, and
sustained events per second with every run recorded.

Latency is from just before `emit()` until the function starts in its worker (the run's
`started`, stamped by the worker); the baseline is the same non-blocking run started directly
with `spawn()`, so the ratio is what the bus costs. Throughput emits N events as fast as one
thread can and counts until N runs have finished; the baseline spawns the same N runs directly.
The NATS rows need a JetStream server (DISPATCH_BENCH_NATS_URL, default nats://127.0.0.1:4222);
they are skipped with a note when there is none.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus
from dispatch_kernel.settings import Settings

from . import Result, p50, p99

_MS = 1e3
NATS_URL = os.environ.get("DISPATCH_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def inc(x):
    return x + 1


def handle(ctx, payload):
    return payload


class _Finished:
    """Collects finished runs of this process as the core reports them (watch_runs)."""

    def __init__(self, core: dk.LocalClient) -> None:
        self.runs: dict[str, object] = {}
        self.count = 0
        self.changed = threading.Condition()
        self.stop = core.watch_runs(self._seen)

    def _seen(self, run) -> None:
        if RunStatus(run.status).finished:
            with self.changed:
                self.runs[run.id] = run
                self.count += 1
                self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


def _nats_available() -> bool:
    host, port = NATS_URL.rsplit("/", 1)[-1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            return '"jetstream":true' in sock.recv(4096).decode(errors="replace")
    except OSError:
        return False


def _drop_stream(stream: str) -> None:
    import nats

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for name in (stream, f"{stream}_DEAD"):
            try:
                await js.delete_stream(name)
            except Exception:
                pass
        await nc.close()

    asyncio.run(drop())


def _core(bus: str) -> tuple[dk.LocalClient, Path, str | None]:
    home = Path(tempfile.mkdtemp(prefix="dk-bench-events-"))
    stream = None
    options: dict = {}
    if bus == "nats":
        stream = f"BENCH_{uuid.uuid4().hex[:10].upper()}"
        options = {"url": NATS_URL, "stream": stream}
    return dk.connect(settings=Settings(home=home, bus=bus, plugin_options={bus: options})), home, stream


def _close(core: dk.LocalClient, home: Path, stream: str | None) -> None:
    core.close()
    shutil.rmtree(home, ignore_errors=True)
    if stream:
        _drop_stream(stream)


def _latencies(bus: str, iterations: int, warmup: int) -> tuple[list[float], list[float]]:
    """(emit -> started, spawn -> started) in seconds, one at a time with a warm worker."""
    core, home, stream = _core(bus)
    try:
        core.deploy(handle, name="target", min_workers=1, max_workers=1)
        core.subscribe("target", event_type="bench.ping")
        time.sleep(0.5)  # consumers (NATS) are up
        finished = _Finished(core)
        emitted, spawned = [], []
        for i in range(warmup + iterations):
            before = finished.count
            start = time.time()
            core.emit("bench.ping", i)
            if not finished.wait_for(before + 1, 30):
                raise RuntimeError(f"{bus}: event {i} started no run within 30 s")
            run = next(r for r in finished.runs.values() if r.input == i and r.event)
            if i >= warmup:
                emitted.append(run.started - start)
            finished.runs.clear()
        for i in range(warmup + iterations):
            before = finished.count
            start = time.time()
            run = core.spawn("target", i)
            if not finished.wait_for(before + 1, 30):
                raise RuntimeError("spawn: no run within 30 s")
            if i >= warmup:
                spawned.append(finished.runs[run.id].started - start)
            finished.runs.clear()
        finished.stop()
        return emitted, spawned
    finally:
        _close(core, home, stream)


def latency(quick: bool = False) -> list[Result]:
    """Emit until the function starts: p50 and p99 in ms, embedded and (if reachable) NATS."""
    iterations, warmup = (100, 20) if quick else (1000, 100)
    results = []
    buses = ["sqlite"] + (["nats"] if _nats_available() else [])
    for bus, goal in (("sqlite", 1.0), ("nats", 3.0)):
        if bus not in buses:
            results.append(Result("event_latency", f"{bus} p50 ms", float("nan"), "spawn -> started", float("nan"),
                                  f"<= {goal:g} ms", None, f"no NATS JetStream at {NATS_URL}: not measured"))
            continue
        emitted, spawned = _latencies(bus, iterations, warmup)
        mid = p50(emitted) * _MS
        results.append(Result("event_latency", f"{bus} p50 ms", mid, "spawn -> started", p50(spawned) * _MS,
                              f"<= {goal:g} ms", mid <= goal,
                              f"{bus}: {iterations} events one at a time after {warmup} warm-up, warm worker"))
        results.append(Result("event_latency", f"{bus} p99 ms", p99(emitted) * _MS, "spawn -> started",
                              p99(spawned) * _MS))
    return results


PRODUCERS = 8  # threads emitting at once, as the requests of a busy server do


def _in_threads(call, total: int) -> None:
    """call(i) for i in range(total), spread over PRODUCERS threads."""
    def work(offset: int) -> None:
        for i in range(offset, total, PRODUCERS):
            call(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _sustained(bus: str, total: int) -> tuple[float, float, int]:
    """(events/s, spawn runs/s, runs recorded) for `total` events into one subscription."""
    core, home, stream = _core(bus)
    try:
        core.deploy(inc, name="sink", min_workers=2, max_workers=2)
        core.subscribe("sink", event_type="bench.load")
        time.sleep(0.5)
        finished = _Finished(core)
        start = time.perf_counter()
        _in_threads(lambda i: core.emit("bench.load", i), total)
        if not finished.wait_for(total, 120):
            raise RuntimeError(f"{bus}: {finished.count} of {total} runs within 120 s")
        events_rate = total / (time.perf_counter() - start)
        recorded = len(core.list_runs(function="sink", status="SUCCEEDED", limit=total * 2))
        finished.stop()
        finished = _Finished(core)
        start = time.perf_counter()
        _in_threads(lambda i: core.spawn("sink", i), total)
        if not finished.wait_for(total, 120):
            raise RuntimeError("spawn baseline did not finish")
        spawn_rate = total / (time.perf_counter() - start)
        finished.stop()
        return events_rate, spawn_rate, recorded
    finally:
        _close(core, home, stream)


def throughput(quick: bool = False) -> list[Result]:
    """Events per second from emit to finished run (8 producer threads), every run recorded,
    embedded and NATS."""
    total = 2000 if quick else 20000
    results = []
    for bus in ["sqlite"] + (["nats"] if _nats_available() else []):
        rate, baseline, recorded = _sustained(bus, total)
        results.append(Result("event_throughput", f"{bus} events/s", rate, "spawn() of the same runs", baseline,
                              ">= 2,000/s, none lost", rate >= 2000 and recorded == total,
                              f"{bus}: {total} events from {PRODUCERS} threads, {recorded} runs recorded SUCCEEDED"))
    return results


BENCHMARKS = {"event_latency": latency, "event_throughput": throughput}
