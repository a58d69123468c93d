"""What is PostgreSQL's own: migrations under a lock (two processes at once migrate once), the
ways to choose it, notifications of other servers' changes, leases and heartbeats."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import psycopg
import pytest
from cryptography.fernet import Fernet

import dispatch_kernel as dk
from dispatch_kernel.model import Function, InvalidRequestError, Run, RunStatus
from dispatch_kernel.settings import Settings
from dispatch_kernel.store import pg_schema
from dispatch_kernel.store.postgres import PostgresStore

OPEN_AT_ONCE = textwrap.dedent(
    """
    import sys, time
    from dispatch_kernel.store.postgres import PostgresStore

    start = float(sys.argv[2])
    while time.time() < start:  # both processes begin together
        time.sleep(0.001)
    store = PostgresStore(sys.argv[1])
    print(",".join(map(str, store.migrated)), flush=True)
    store.close()
    """
)


def test_two_processes_starting_at_once_migrate_once(pg_dsn, tmp_path):
    script = tmp_path / "open.py"
    script.write_text(OPEN_AT_ONCE)
    start = str(time.time() + 3)  # both have imported everything by then
    processes = [subprocess.Popen([sys.executable, str(script), pg_dsn, start], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in results]
    applied = sorted(out.strip() for out, _ in results)
    everything = ",".join(str(n) for n in range(1, len(pg_schema.MIGRATIONS) + 1))
    assert applied == ["", everything]  # one process migrated, the other found nothing to do
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT version FROM dispatch_migrations ORDER BY version").fetchall()
    assert [v for (v,) in rows] == list(range(1, len(pg_schema.MIGRATIONS) + 1))


def test_a_newer_schema_is_refused_with_a_clear_error(pg_dsn):
    PostgresStore(pg_dsn).close()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO dispatch_migrations (version, applied_by) VALUES (999, 'the future')")
    with pytest.raises(RuntimeError, match="newer than this dispatch-kernel knows"):
        PostgresStore(pg_dsn)


def test_an_unreachable_database_is_a_clear_error():
    with pytest.raises(InvalidRequestError, match="cannot reach the PostgreSQL store"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=1")


def test_the_store_is_chosen_by_name_by_url_and_by_environment(pg_dsn, tmp_path, monkeypatch):
    by_name = Settings(home=tmp_path, store="postgres", plugin_options={"postgres": {"dsn": pg_dsn}})
    by_url = Settings(home=tmp_path, store=pg_dsn)
    assert by_url.store == "postgres" and by_url.options("postgres")["dsn"] == pg_dsn
    monkeypatch.setenv("DISPATCH_STORE_URL", pg_dsn)
    by_env = Settings(home=tmp_path)
    assert (by_name.store, by_env.store) == ("postgres", "postgres")
    assert by_env.options("postgres")["dsn"] == pg_dsn
    monkeypatch.delenv("DISPATCH_STORE_URL")
    with pytest.raises(InvalidRequestError, match='plugin_options\\["postgres"\\]\\["dsn"\\]'):
        PostgresStore(Settings(home=tmp_path, store="postgres"))
    with pytest.raises(InvalidRequestError, match="unknown store URL mysql://"):
        Settings(home=tmp_path, store="mysql://db/x")


def test_connect_with_a_store_url_keeps_functions_in_postgres(pg_dsn, tmp_path, monkeypatch):
    def double(x):
        return 2 * x

    monkeypatch.setenv("DISPATCH_SECRET_KEY", Fernet.generate_key().decode())  # the team's key
    with dk.connect(home=tmp_path / "one", store=pg_dsn) as client:
        client.deploy(double)
        assert client.call("double", 21) == 42
    # Another home, the same database: the function and its run are there.
    with dk.connect(home=tmp_path / "two", store=pg_dsn) as client:
        assert [f.name for f in client.list_functions()] == ["double"]
        runs = client.list_runs(function="double")
        assert [(r.status, r.output) for r in runs] == [(RunStatus.SUCCEEDED, 42)]
        assert client.call("double", 4) == 8  # its workers start here, from the stored package
    # A server with another key is refused: it would seal secrets the others cannot read.
    monkeypatch.setenv("DISPATCH_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(dk.DispatchError, match="every server that shares a store must have the same"):
        dk.connect(home=tmp_path / "three", store=pg_dsn)


def test_another_server_learns_of_an_entity_change_by_notification(pg_dsn):
    one, two = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    try:
        before = two.version()
        one.create(Function(name="f"))
        deadline = time.monotonic() + 5
        while two.version() == before and time.monotonic() < deadline:
            time.sleep(0.001)
        assert two.version() != before
    finally:
        one.close()
        two.close()


def test_runs_changed_by_another_server_reach_watchers(pg_dsn):
    one, two = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    seen: list[tuple[str, str]] = []
    arrived = threading.Event()

    def watcher(runs):
        seen.extend((run.id, run.status.value) for run in runs)
        if any(status == "SUCCEEDED" for _, status in seen):
            arrived.set()

    stop = two.watch_runs(watcher, exclude_host="two")
    try:
        run = Run(function="f")
        one.add_runs([run], host="one")
        run.status = RunStatus.SUCCEEDED
        one.finish_runs([run])
        assert arrived.wait(10)
        assert seen[-1] == (run.id, "SUCCEEDED")
        mine = Run(function="f")
        two.add_runs([mine], host="two")  # its own runs are not news to it
        two.get_run("default", mine.id)
        time.sleep(0.3)
        assert mine.id not in {run_id for run_id, _ in seen}
    finally:
        stop()
        one.close()
        two.close()


def test_a_lease_has_one_holder_until_it_expires(pg_dsn):
    store = PostgresStore(pg_dsn)
    try:
        assert store.acquire_lease("source:x", "a", ttl=0.5)
        assert not store.acquire_lease("source:x", "b", ttl=0.5)
        assert store.acquire_lease("source:x", "a", ttl=0.5)  # renewed by its holder
        time.sleep(0.7)
        assert store.acquire_lease("source:x", "b", ttl=5)  # expired: taken over
        store.release_lease("source:x", "a")  # not a's any more: nothing happens
        assert not store.acquire_lease("source:x", "a", ttl=5)
        store.release_lease("source:x", "b")
        assert store.acquire_lease("source:x", "a", ttl=5)
    finally:
        store.close()


def test_heartbeats_tell_live_hosts(pg_dsn):
    store = PostgresStore(pg_dsn)
    try:
        store.heartbeat("a")
        store.heartbeat("b")
        assert store.live_hosts(within=5) == {"a", "b"}
        time.sleep(0.6)
        store.heartbeat("b")
        assert store.live_hosts(within=0.5) == {"b"}
        store.forget_host("b")
        assert store.live_hosts(within=5) == {"a"}
    finally:
        store.close()
