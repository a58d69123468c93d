"""The postgres store beside SQLite, in the same run.

    store-roundtrip    warm fn(1) p50 on PostgreSQL, against the same on SQLite (goal: <= 2x)
    store-throughput   fn.map() runs/s on PostgreSQL with every run recorded (goal: >= 10,000),
                       against the same on SQLite
    store-rest         POST runs with wait from 16 clients spread over two servers sharing one
                       database, against the same 16 clients on one of them
    store-notify       how soon another server's store learns of a changed entity (goal: 100 ms),
                       against a bare SELECT round trip

Each benchmark makes a database of its own on the PostgreSQL server of DISPATCH_BENCH_POSTGRES
(default postgresql://postgres@127.0.0.1:5432/test) and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet

import dispatch_kernel as dk
from dispatch_kernel.images.services import free_port, stop_process

from . import Result, p50
from .core import _timed, inc
from .server import BASE_URL, _client, _start_jupyter

ADMIN_DSN = os.environ.get("DISPATCH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CLIENTS = 16
_US = 1e6


@contextmanager
def database() -> Iterator[str]:
    """A new database for the benchmark; its DSN."""
    import psycopg
    from psycopg import sql

    name = f"dk_bench_{secrets.token_hex(5)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def client_on(store: str | None) -> Iterator[dk.LocalClient]:
    """An embedded client on a new home, on SQLite (None) or the store URL given."""
    home = Path(tempfile.mkdtemp(prefix="dk-bench-store-"))
    client = dk.connect(home=home, store=store) if store else dk.connect(home=home)
    try:
        yield client
    finally:
        client.close()
        shutil.rmtree(home, ignore_errors=True)


def _warm_p50(store: str | None, iterations: int, warmup: int) -> float:
    with client_on(store) as client:
        fn = client.deploy(inc, name="roundtrip", min_workers=1)
        return p50(_timed(lambda: fn(1), iterations, warmup))


def store_roundtrip(quick: bool = False) -> list[Result]:
    """Warm fn(1) p50 on PostgreSQL against SQLite, alternating so that load falls on both."""
    iterations, warmup = (300, 50) if quick else (5000, 500)
    sqlite, postgres = [], []
    for _ in range(1 if quick else 3):
        sqlite.append(_warm_p50(None, iterations, warmup))
        with database() as dsn:  # each round's new home has a key of its own: a database of its own
            postgres.append(_warm_p50(dsn, iterations, warmup))
    mid, base = p50(postgres) * _US, p50(sqlite) * _US
    return [Result("store-roundtrip", "p50 µs", mid, "the same on SQLite", base, "<= 2x SQLite", mid <= 2 * base,
                   f"median of {len(postgres)} rounds of {iterations} calls after {warmup} warm-up, each store")]


def _map_rate(store: str | None, n: int, repeats: int) -> tuple[float, int, int]:
    with client_on(store) as client:
        fn = client.deploy(inc, name="throughput", min_workers=2, max_workers=2)
        list(fn.map(range(1000)))
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = list(fn.map(range(n)))
            rates.append(n / (time.perf_counter() - start))
            if len(out) != n or out[-1] != n:
                raise RuntimeError("store-throughput: map() returned wrong outputs")
        made = 1000 + repeats * n
        recorded = sum(run.status == dk.RunStatus.SUCCEEDED
                       for run in client.list_runs(function="throughput", limit=made + 100))
        return p50(rates), recorded, made


def store_throughput(quick: bool = False) -> list[Result]:
    """map() runs/s with every run recorded, PostgreSQL against SQLite."""
    n, repeats = (5000, 1) if quick else (50000, 3)
    with database() as dsn:
        base, base_recorded, _ = _map_rate(None, n, repeats)
        rate, recorded, made = _map_rate(dsn, n, repeats)
        import psycopg

        with psycopg.connect(dsn) as conn:  # counted in the database itself, not through the client
            rows = conn.execute("SELECT count(*) FROM runs WHERE status='SUCCEEDED'").fetchone()[0]
    return [
        Result("store-throughput", "runs/s", rate, "the same on SQLite", base, ">= 10,000 runs/s", rate >= 10_000,
               f"median of {repeats} x map(range({n})) on 2 workers"),
        Result("store-throughput", "runs recorded", rows, "runs made", made, "all recorded",
               rows == made == recorded, f"{recorded} listed, {rows} rows in PostgreSQL, of {made} made"),
    ]




def _spread(ports: list[int], token: str, total: int) -> float:
    """Runs per second of `total` POSTs from CLIENTS connections spread over `ports`."""
    body = json.dumps({"function": "inc", "input": [1], "wait": True}).encode()

    def request(port: int) -> bytes:
        return (f"POST {BASE_URL}dispatch/v1/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: token {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    latencies: list[float] = []

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*[_client(ports[i % len(ports)], request(ports[i % len(ports)]),
                                       total // CLIENTS, latencies) for i in range(CLIENTS)])
        return time.perf_counter() - started

    elapsed = asyncio.run(run())  # first: the latencies are made by it
    return len(latencies) / elapsed


def store_rest(quick: bool = False) -> list[Result]:
    """REST runs/s, 16 clients over two servers on one database, against one server."""
    total = 800 if quick else 4800
    token = secrets.token_hex(16)
    homes = [Path(tempfile.mkdtemp(prefix="dk-bench-store-rest-")) for _ in range(2)]
    processes: list[subprocess.Popen] = []
    with database() as dsn:
        env = {"DISPATCH_STORE_URL": dsn, "DISPATCH_SECRET_KEY": Fernet.generate_key().decode()}
        try:
            ports = [free_port(), free_port()]
            for home, port in zip(homes, ports):
                processes.append(_start_jupyter(home, port, token, env))
            with dk.connect(f"http://127.0.0.1:{ports[0]}{BASE_URL}", token=token) as client:
                client.deploy(inc, min_workers=2, max_workers=2)
            _spread(ports, token, CLIENTS * 20)  # warm: B starts its workers from the stored package
            rates_two, rates_one = [], []
            for _ in range(1 if quick else 3):
                rates_one.append(_spread(ports[:1], token, total))
                rates_two.append(_spread(ports, token, total))
        finally:
            for process in processes:
                stop_process(process, grace=20)
            for home in homes:
                shutil.rmtree(home, ignore_errors=True)
    two, one = p50(rates_two), p50(rates_one)
    return [Result("store-rest", "runs/s, 2 servers", two, "1 server, same database", one, "-", None,
                   f"{CLIENTS} clients, {total} runs a round, median of {len(rates_two)}; both servers, "
                   f"their workers and the clients share {os.cpu_count()} cores")]


def store_notify(quick: bool = False) -> list[Result]:
    """Milliseconds from an update committed through one store to `version()` moving in
    another (LISTEN/NOTIFY), p50, against a `SELECT 1` round trip on the same database."""
    import psycopg

    from dispatch_kernel.model import Function
    from dispatch_kernel.store.postgres import PostgresStore

    iterations = 50 if quick else 500
    with database() as dsn:
        one, two = PostgresStore(dsn), PostgresStore(dsn)
        try:
            function = one.create(Function(name="f"))
            samples = []
            for _ in range(iterations):
                before = two.version()
                start = time.perf_counter()
                function = one.update(function)
                while two.version() == before:  # bounded by the deadline below
                    if time.perf_counter() - start > 5:
                        raise RuntimeError("store-notify: no notification within 5 s")
                    time.sleep(0.0001)
                samples.append(time.perf_counter() - start)
        finally:
            one.close()
            two.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            trips = _timed(lambda: conn.execute("SELECT 1").fetchone(), iterations, 10)
    mid = p50(samples) * 1e3
    return [Result("store-notify", "p50 ms", mid, "SELECT 1 round trip", p50(trips) * 1e3, "<= 100 ms", mid <= 100,
                   f"{iterations} updates; the figure includes the update's own commit")]


BENCHMARKS = {"store-roundtrip": store_roundtrip, "store-throughput": store_throughput, "store-rest": store_rest,
              "store-notify": store_notify}
