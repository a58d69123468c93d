"""The core's four hot paths: warm round trip, cold start, map throughput, deploy.

Each benchmark builds its own client on a fresh temporary home, so no run depends on what an
earlier one left behind, and measures its plain-Python baseline in the same process. Baselines
that fork run before the client exists: forking a process that already has the core's threads
and sockets is what we want to avoid, both for safety and so that the child holds nothing of
the core's.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import cloudpickle

import dispatch_kernel as dk

from . import Result, p50, p99

_US = 1e6
_MS = 1e3


def inc(x: int) -> int:
    """The trivial function every benchmark runs: the cost measured is all overhead."""
    return x + 1


@contextmanager
def fresh_client() -> Iterator[tuple[dk.LocalClient, Path]]:
    """A client on a new temporary home, closed and removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="dk-bench-"))
    client = dk.connect(home=home)
    try:
        yield client, home
    finally:
        client.close()
        shutil.rmtree(home, ignore_errors=True)


def _timed(call: Callable[[], object], iterations: int, warmup: int) -> list[float]:
    """Seconds per call for `iterations` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def _recorded_rows(home: Path, function: str) -> int | None:
    """SUCCEEDED run rows of `function` counted straight from the SQLite file, read-only,
    so the check does not rest on the client that wrote them (None if the schema moved)."""
    try:
        db = sqlite3.connect(f"file:{home / 'dispatch.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM runs WHERE function=? AND status='SUCCEEDED'",
                              (function,)).fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None


# ---------------------------------------------------------------------------- 1. round trip


def _reap(pid: int, grace: float = 5.0) -> None:
    """Wait for child `pid`; kill it if it has not exited within `grace` seconds."""
    for _ in range(int(grace / 0.01)):  # bounded: never wait forever on a child
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def pipe_round_trips(iterations: int, warmup: int) -> list[float]:
    """Seconds per 1-byte echo through two os.pipe()s to a forked child: the floor for any
    round trip between two processes on this machine."""
    down_r, down_w = os.pipe()  # parent -> child
    up_r, up_w = os.pipe()  # child -> parent
    total = warmup + iterations
    pid = os.fork()
    if pid == 0:  # the echo child: no Python-level cleanup, it must only ever _exit
        status = 1
        try:
            os.close(down_w)
            os.close(up_r)
            for _ in range(total):  # bounded by the count, and EOF ends it early
                data = os.read(down_r, 64)
                if not data:
                    break
                os.write(up_w, data)
            status = 0
        finally:
            os._exit(status)
    # Close the child's ends here, else a dead child would leave our read blocked forever.
    os.close(down_r)
    os.close(up_w)
    samples = []
    try:
        for i in range(total):
            start = time.perf_counter()
            os.write(down_w, b"x")
            if os.read(up_r, 64) != b"x":
                raise RuntimeError("the echo child ended early")
            if i >= warmup:
                samples.append(time.perf_counter() - start)
    finally:
        os.close(down_w)  # EOF for the child if it is still reading
        os.close(up_r)
        _reap(pid)
    return samples


def roundtrip(quick: bool = False) -> list[Result]:
    """Warm `fn(1)` through the client (min_workers=1) against a warm ProcessPoolExecutor(1)
    and a raw pipe echo; p50 and p99 in µs."""
    iterations, warmup = (300, 50) if quick else (10000, 1000)
    pipe = pipe_round_trips(iterations, warmup)
    with ProcessPoolExecutor(1) as pool:
        pool_samples = _timed(lambda: pool.submit(inc, 1).result(), iterations, warmup)
    with fresh_client() as (client, home):
        fn = client.deploy(inc, name="roundtrip", min_workers=1)
        if fn(1) != 2:
            raise RuntimeError("roundtrip: inc(1) did not return 2")
        samples = _timed(lambda: fn(1), iterations, warmup)
        # Listing applies this process's run journal, so the file below holds every run.
        listed = len(client.list_runs(function="roundtrip", status="SUCCEEDED", limit=iterations + warmup + 10))
        rows = _recorded_rows(home, "roundtrip")

    mid, tail = p50(samples) * _US, p99(samples) * _US
    pool_mid, pool_tail = p50(pool_samples) * _US, p99(pool_samples) * _US
    pool_name = "ProcessPoolExecutor(1).submit(inc,1).result()"
    return [
        Result("roundtrip", "p50 µs", mid, pool_name, pool_mid,
               "<= 100 µs and < baseline", mid <= 100 and mid < pool_mid,
               f"{iterations} timed calls after {warmup} warm-up; "
               f"{listed} listed, {rows} in the SQLite file, of {1 + warmup + iterations} runs SUCCEEDED"),
        Result("roundtrip", "p99 µs", tail, pool_name, pool_tail),
        Result("roundtrip", "p50 µs", mid, "os.pipe echo, forked child", p50(pipe) * _US),
        Result("roundtrip", "p99 µs", tail, "os.pipe echo, forked child", p99(pipe) * _US),
    ]


@contextmanager
def cpu_hog() -> Iterator[int]:
    """One busy Python process per core for the length of the block; yields how many.

    Each hog is started in its own session and killed with its whole group afterwards, so a
    benchmark that crashes leaves none behind."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                             stdin=subprocess.DEVNULL)
            for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.2)  # let the scheduler see them as CPU-bound before anything is measured
        yield len(hogs)
    finally:
        for hog in hogs:
            try:
                os.killpg(hog.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            hog.wait()


def roundtrip_hog(quick: bool = False) -> list[Result]:
    """Warm `fn(1)` while one busy process per core competes for the CPU, against a warm
    ProcessPoolExecutor(1) under the same hogs; p50 and p99 in µs."""
    iterations, warmup = (300, 50) if quick else (3000, 300)
    with cpu_hog() as hogs:
        with ProcessPoolExecutor(1) as pool:
            pool_samples = _timed(lambda: pool.submit(inc, 1).result(), iterations, warmup)
    with fresh_client() as (client, _home):
        fn = client.deploy(inc, name="roundtrip-hog", min_workers=1)
        if fn(1) != 2:
            raise RuntimeError("roundtrip_hog: inc(1) did not return 2")
        with cpu_hog():
            samples = _timed(lambda: fn(1), iterations, warmup)
    mid, tail = p50(samples) * _US, p99(samples) * _US
    pool_mid = p50(pool_samples) * _US
    pool_name = f"ProcessPoolExecutor(1) under the same {hogs} hogs"
    return [
        Result("roundtrip_hog", "p50 µs", mid, pool_name, pool_mid, "< baseline", mid < pool_mid,
               f"{iterations} timed calls after {warmup} warm-up, while {hogs} processes "
               "spin (one per core)"),
        Result("roundtrip_hog", "p99 µs", tail, pool_name, p99(pool_samples) * _US),
    ]


# ---------------------------------------------------------------------------- 2. cold start


def coldstart(quick: bool = False) -> list[Result]:
    """The first `fn(1)` after deploying a new function (min_workers=0, environment and fork
    server already up), p50 in ms, against starting a bare Python interpreter."""
    iterations, warmup = (5, 1) if quick else (100, 5)
    python = _timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
                    iterations, warmup)
    samples: list[float] = []
    cold_flags = 0
    with fresh_client() as (client, _home):
        # Brings up the environment's fork server: "cached" is the state this benchmark wants.
        client.deploy(inc, name="coldstart-warmup", min_workers=0)(1)
        for i in range(warmup + iterations):
            fn = client.deploy(inc, name=f"coldstart-{i}", min_workers=0)
            start = time.perf_counter()
            fn(1)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                samples.append(elapsed)
                cold_flags += bool(fn.runs(limit=1)[0].cold_start)
            fn.delete()  # its worker would otherwise idle on, competing for the 2 cores
    mid = p50(samples) * _MS
    return [
        Result("coldstart", "p50 ms", mid, "subprocess.run([python, -c, pass])", p50(python) * _MS,
               "<= 20 ms", mid <= 20,
               f"{iterations} new functions; {cold_flags}/{iterations} runs recorded cold_start=True"),
    ]


# What a fresh process (a new kernel, a script) runs: its first deploy-and-run, timed inside it
# from before `import dispatch_kernel` to the first answer, printed in ms as its last line.
_FIRST_CELL = """
import sys, time
started = time.perf_counter()
import dispatch_kernel as dk
def inc(x):
    return x + 1
client = dk.connect(home=sys.argv[1])
fn = client.deploy(inc, name="inc")
assert fn(1) == 2
print((time.perf_counter() - started) * 1e3, flush=True)
client.close()
"""


def _fresh_process_env(pycache: Path) -> dict[str, str]:
    """This environment, with bytecode cached (in `pycache`, not beside the sources) as on any
    machine where the package was installed: what a user's new kernel starts with."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "DISPATCH_URL")}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def coldstart_process(quick: bool = False) -> list[Result]:
    """A new process that imports dispatch_kernel, connects, deploys `inc` and runs it once:
    the whole process, and the part from the import to the first answer, against
    `python -c "import dispatch_kernel"`; p50 in ms."""
    iterations, warmup = (3, 1) if quick else (30, 3)
    scratch = Path(tempfile.mkdtemp(prefix="dk-bench-fresh-"))
    env = _fresh_process_env(scratch / "pycache")
    whole: list[float] = []
    inside: list[float] = []
    try:
        importing = _timed(lambda: subprocess.run([sys.executable, "-c", "import dispatch_kernel"],
                                                  env=env, check=True), iterations, warmup)
        for i in range(warmup + iterations):
            home = scratch / f"home-{i}"
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _FIRST_CELL, str(home)], env=env, check=True,
                                 capture_output=True, text=True, timeout=60)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                whole.append(elapsed)
                inside.append(float(out.stdout.split()[-1]) / _MS)
            shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    baseline_name = 'python -c "import dispatch_kernel"'
    first = p50(inside) * _MS
    return [
        Result("coldstart", "new process: import..answer p50 ms", first, baseline_name,
               p50(importing) * _MS, "<= 100 ms", first <= 100,
               f"{iterations} new processes, each on a new home (bytecode cached, as once installed); "
               "the first row is timed inside the process, the second is the whole process with its exit"),
        Result("coldstart", "new process: whole p50 ms", p50(whole) * _MS, baseline_name,
               p50(importing) * _MS),
    ]


# ---------------------------------------------------------------------------- 3. throughput


def throughput(quick: bool = False) -> list[Result]:
    """Trivial runs per second through `fn.map(range(N))` on 2 workers, every run recorded,
    against ProcessPoolExecutor(2).map with a chunk size like the core's batches."""
    n, repeats, warmup_n = (5000, 1, 1000) if quick else (50000, 5, 5000)
    chunksize = 512  # the core sends map() work in batches growing to 512 runs: same here
    pool_rates = []
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(inc, range(warmup_n), chunksize=chunksize))
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(inc, range(n), chunksize=chunksize))
            pool_rates.append(n / (time.perf_counter() - start))
    rates = []
    name = "throughput"
    with fresh_client() as (client, home):
        fn = client.deploy(inc, name=name, min_workers=2, max_workers=2)
        list(fn.map(range(warmup_n)))
        for _ in range(repeats):
            start = time.perf_counter()
            out = list(fn.map(range(n)))
            rates.append(n / (time.perf_counter() - start))
            if len(out) != n or out[-1] != n:
                raise RuntimeError("throughput: map() returned wrong outputs")
        expected = warmup_n + repeats * n
        listed = sum(run.status == dk.RunStatus.SUCCEEDED
                     for run in client.list_runs(function=name, limit=expected + 100))
        rows = _recorded_rows(home, name)
    rate = p50(rates)
    return [
        Result("throughput", "runs/s", rate, f"ProcessPoolExecutor(2).map(chunksize={chunksize})",
               p50(pool_rates), ">= 10,000 runs/s", rate >= 10_000,
               f"median of {repeats} x map(range({n})) after {warmup_n} warm-up runs"),
        Result("throughput", "runs recorded", listed, "runs made", expected,
               "all recorded", listed == expected and rows == expected,
               f"client.list_runs counts {listed} SUCCEEDED, the SQLite file {rows}, of {expected} made"),
    ]


# ---------------------------------------------------------------------------- 4. deploy


def _package_by_value(fn: Callable[..., object]) -> bytes:
    # What deploy() ships for a function of a local module: the code by value, not a reference.
    module = sys.modules[fn.__module__.partition(".")[0]]
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(fn, protocol=5)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def deploy(quick: bool = False) -> list[Result]:
    """`client.deploy(inc, name=<new>)` with the environment cached, p50 in ms, against
    pickling the same function by value and writing it to a file."""
    iterations, warmup = (10, 2) if quick else (200, 10)
    scratch = Path(tempfile.mkdtemp(prefix="dk-bench-pickle-"))
    try:
        counter = iter(range(warmup + iterations))
        baseline = _timed(
            lambda: (scratch / f"deploy-{next(counter)}.pkl").write_bytes(_package_by_value(inc)),
            iterations, warmup)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with fresh_client() as (client, _home):
        client.deploy(inc, name="deploy-warmup")(1)  # environment and fork server up
        names = iter(range(warmup + iterations))
        samples = _timed(lambda: client.deploy(inc, name=f"deploy-{next(names)}"), iterations, warmup)
        deployed = len(client.list_functions())
    mid = p50(samples) * _MS
    return [
        Result("deploy", "p50 ms", mid, "cloudpickle.dumps by value + write file",
               p50(baseline) * _MS, "<= 300 ms", mid <= 300,
               f"{iterations} new names after {warmup} warm-up; {deployed} functions in the store"),
    ]


BENCHMARKS: dict[str, Callable[[bool], list[Result]]] = {
    "roundtrip": roundtrip,
    "roundtrip_hog": roundtrip_hog,
    "coldstart": coldstart,
    "coldstart_process": coldstart_process,
    "throughput": throughput,
    "deploy": deploy,
}
