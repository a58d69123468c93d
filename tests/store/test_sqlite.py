"""The SQLite store: migrations, optimistic concurrency, organizations, run records."""

import sqlite3

import pytest

from dispatch_kernel.model import (
    ConflictError,
    ErrorType,
    Function,
    NotFoundError,
    Run,
    RunStatus,
    Secret,
)
from dispatch_kernel.store.sqlite import MIGRATIONS, SqliteStore


@pytest.fixture
def store(tmp_path):
    the_store = SqliteStore(tmp_path / "dispatch.db")
    yield the_store
    the_store.close()


def test_a_new_file_is_migrated_to_the_latest_schema_in_wal_mode(store):
    assert store.schema_version == len(MIGRATIONS)
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path):
    first = SqliteStore(tmp_path / "d.db")
    first.create(Function(name="f"))
    first.close()
    second = SqliteStore(tmp_path / "d.db")
    assert second.get(Function, "default", "f").name == "f"
    assert second.schema_version == len(MIGRATIONS)
    second.close()


def test_create_sets_revision_one_and_refuses_a_taken_name(store):
    created = store.create(Function(name="f", handler="h"))
    assert created.revision == 1
    with pytest.raises(ConflictError, match="already exists"):
        store.create(Function(name="f"))


def test_a_stale_update_is_refused_and_changes_nothing(store):
    store.create(Function(name="f", handler="one"))
    mine = store.get(Function, "default", "f")
    theirs = store.get(Function, "default", "f")
    mine.handler = "two"
    store.update(mine)
    assert mine.revision == 2
    theirs.handler = "three"
    with pytest.raises(ConflictError, match="revision 2"):
        store.update(theirs)
    assert store.get(Function, "default", "f").handler == "two"


def test_entities_are_scoped_by_organization(store):
    store.create(Function(name="f", org="acme"))
    store.create(Function(name="f", org="globex"))
    assert [f.org for f in store.list(Function, "acme")] == ["acme"]
    with pytest.raises(NotFoundError):
        store.get(Function, "default", "f")
    store.delete(Function, "acme", "f")
    assert store.get(Function, "globex", "f").org == "globex"


def test_kinds_do_not_collide(store):
    store.create(Function(name="x"))
    store.create(Secret(name="x"))
    assert len(store.list(Function, "default")) == len(store.list(Secret, "default")) == 1


def test_delete_of_a_missing_entity_is_not_found(store):
    with pytest.raises(NotFoundError, match="no function named 'nope'"):
        store.delete(Function, "default", "nope")


def test_runs_round_trip_and_list_newest_first_with_filters(store):
    runs = [Run(function="f" if i % 2 else "g", input={"i": i}) for i in range(6)]
    store.add_runs(runs, host="h1")
    runs[1].status = RunStatus.SUCCEEDED
    runs[1].output = {"ok": True}
    runs[1].logs = {"stdout": "hi\n", "stderr": ""}
    runs[3].fail(ErrorType.FUNCTION, "boom", "Traceback ...")
    store.finish_runs([runs[1], runs[3]])
    again = store.get_run("default", runs[1].id)
    assert again.output == {"ok": True} and again.logs["stdout"] == "hi\n"
    assert again.status == RunStatus.SUCCEEDED
    listed = store.list_runs("default", function="f")
    assert [r.id for r in listed] == [runs[5].id, runs[3].id, runs[1].id]
    failed = store.list_runs("default", status="FAILED")
    assert [r.error.message for r in failed] == ["boom"]
    page = store.list_runs("default", limit=2)
    rest = store.list_runs("default", before=page[-1].id, limit=10)
    assert [r.id for r in page + rest] == [r.id for r in reversed(runs)]


def test_values_json_cannot_carry_are_described_not_lost(store):
    run = Run(function="f", input={"when": object})
    store.add_runs([run], host="h")
    stored = store.get_run("default", run.id).input["when"]
    assert stored["$python"] == "builtins.type" and "object" in stored["repr"]


def test_unsettled_runs_of_a_host_are_failed_as_system_errors(store):
    queued, running, done = Run(function="f"), Run(function="f"), Run(function="f")
    running.status = RunStatus.RUNNING
    store.add_runs([queued, running, done], host="dead")
    done.status = RunStatus.SUCCEEDED
    store.finish_runs([done])
    store.add_runs([Run(function="f")], host="alive")
    assert store.unsettled_hosts() == {"dead", "alive"}
    assert store.fail_unsettled("dead", "interrupted") == 2
    assert store.unsettled_hosts() == {"alive"}
    settled = store.get_run("default", running.id)
    assert settled.status == RunStatus.FAILED
    assert settled.error.type == "SystemError" and settled.error.message == "interrupted"
    assert store.get_run("default", done.id).status == RunStatus.SUCCEEDED


def test_version_changes_when_another_connection_writes(store, tmp_path):
    before = store.version()
    other = SqliteStore(store.path)
    other.create(Function(name="written-elsewhere"))
    other.close()
    assert store.version() != before
