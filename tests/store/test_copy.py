"""`dispatch store copy`: an embedded home's store moves into PostgreSQL, idempotently, and a
copy that stopped half-way goes on; `dispatch secrets rotate-key` on a shared store."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

import dispatch_kernel as dk
from dispatch_kernel.cli import main
from dispatch_kernel.cli import stores
from dispatch_kernel.model import RunStatus
from dispatch_kernel.store.postgres import PostgresStore
from dispatch_kernel.store.sqlite import SqliteStore


def square(x):
    return x * x


@pytest.fixture
def team_key(monkeypatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", key)
    return key


def test_a_home_is_copied_into_postgres_once_and_whole(home, pg_dsn, team_key, capsys, monkeypatch):
    with dk.connect(home=home) as client:
        client.deploy(square)
        client.create_secret("login", {"password": "hunter2"})
        assert list(client.map("square", range(12))) == [i * i for i in range(12)]
        ids = sorted(run.id for run in client.list_runs(limit=1000))
    monkeypatch.setattr(stores, "PAGE", 5)  # several pages
    # A copy that stopped half-way: some runs are there already.
    source, target = SqliteStore(home / "dispatch.db"), PostgresStore(pg_dsn)
    target.import_runs(source.export_runs(limit=4))
    source.close()
    target.close()
    assert main(["store", "copy", "--from", f"sqlite:{home}", "--to", pg_dsn]) == 0
    assert "copied 2 new entities and 12 runs" in capsys.readouterr().out
    assert main(["store", "copy", "--from", f"sqlite:{home}", "--to", pg_dsn]) == 0  # again: nothing new
    assert "copied 0 new entities" in capsys.readouterr().out
    with dk.connect(home=home / "elsewhere", store=pg_dsn) as team:
        assert sorted(run.id for run in team.list_runs(limit=1000)) == ids
        assert all(run.status == RunStatus.SUCCEEDED for run in team.list_runs(limit=1000))
        assert team.get_secret("login").values == {"password": "hunter2"}
        assert team.call("square", 9) == 81


def test_a_target_sealed_with_another_key_is_refused(home, pg_dsn, team_key, capsys, monkeypatch):
    with dk.connect(home=home) as client:
        client.create_secret("login", {"password": "x"})
    monkeypatch.setenv("DISPATCH_SECRET_KEY", Fernet.generate_key().decode())
    with dk.connect(home=home / "team", store=pg_dsn):  # the team's store has another key
        pass
    assert main(["store", "copy", "--from", f"sqlite:{home}", "--to", pg_dsn]) == 1
    assert "sealed with another key" in capsys.readouterr().err
    target = PostgresStore(pg_dsn)
    try:
        assert list(target.export_entities()) == []
    finally:
        target.close()


def test_bad_locations_are_clear(capsys):
    assert main(["store", "copy", "--from", "mysql://x", "--to", "postgresql://y"]) == 1
    assert "is not a store: use sqlite:PATH or postgresql://" in capsys.readouterr().err


def test_rotate_key_on_a_shared_store(home, pg_dsn, team_key, capsys, monkeypatch):
    monkeypatch.setenv("DISPATCH_STORE_URL", pg_dsn)
    with dk.connect(home=home) as client:
        client.create_secret("login", {"password": "hunter2"})
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", f"{new},{team_key}")
    with dk.connect(home=home / "second") as running:  # a server with both keys keeps serving
        assert main(["secrets", "rotate-key"]) == 0
        assert "re-sealed 1 secret" in capsys.readouterr().out
        assert running.get_secret("login").values == {"password": "hunter2"}
    monkeypatch.setenv("DISPATCH_SECRET_KEY", new)
    with dk.connect(home=home / "third") as client:
        assert client.get_secret("login").values == {"password": "hunter2"}
