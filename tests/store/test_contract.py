"""The EntityStore contract, the same tests against every store: SQLite and PostgreSQL.

Each test gets a fresh store (a new SQLite file, a new PostgreSQL database) through `open_store`,
which opens another store on the same place when called again (another process would).
"""

import time

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
from dispatch_kernel.settings import Settings
from dispatch_kernel.store import pg_schema, sqlite


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path):
    """A function that opens a store on this test's place (each call, another store)."""
    opened = []
    if request.param == "sqlite":
        settings = Settings(home=tmp_path / "home", store="sqlite")
        migrations = len(sqlite.MIGRATIONS)
    else:
        from tests.postgres_support import fresh_database

        database = fresh_database()
        settings = Settings(home=tmp_path / "home", store=database.__enter__())
        request.addfinalizer(lambda: database.__exit__(None, None, None))
        migrations = len(pg_schema.MIGRATIONS)

    def open_one():
        from dispatch_kernel import plugins

        the_store = plugins.load("store", settings.store)(settings)
        the_store.migrations = migrations
        opened.append(the_store)
        return the_store

    yield open_one
    for the_store in opened:
        the_store.close()


@pytest.fixture
def store(open_store):
    return open_store()


def test_reopening_keeps_data_and_does_not_migrate_twice(open_store):
    first = open_store()
    assert first.schema_version == first.migrations
    first.create(Function(name="f"))
    first.close()
    second = open_store()
    assert second.get(Function, "default", "f").name == "f"
    assert second.schema_version == second.migrations


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


def test_the_driver_of_a_run_is_kept_from_its_start_or_its_end(store):
    pinned, chosen = Run(function="f", driver="local"), Run(function="f")
    store.add_runs([pinned, chosen], host="h1")
    assert store.get_run("default", pinned.id).driver == "local"
    assert store.get_run("default", chosen.id).driver == ""  # not chosen yet
    chosen.driver, chosen.status = "kubernetes", RunStatus.SUCCEEDED
    store.finish_runs([chosen])
    assert store.get_run("default", chosen.id).driver == "kubernetes"
    assert {r.id: r.driver for r in store.list_runs("default")} == {pinned.id: "local", chosen.id: "kubernetes"}


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


def test_version_changes_when_another_connection_writes(store, open_store):
    before = store.version()
    other = open_store()
    other.create(Function(name="written-elsewhere"))
    other.close()
    deadline = time.monotonic() + 5  # PostgreSQL tells by a notification: give it a moment
    while store.version() == before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store.version() != before


def test_an_update_of_a_deleted_entity_is_not_found(store):
    function = store.create(Function(name="f"))
    store.delete(Function, "default", "f")
    with pytest.raises(NotFoundError):
        store.update(function)


def test_ids_are_unique_across_names(store):
    first = store.create(Function(name="a"))
    twin = Function(name="b")
    twin.id = first.id
    with pytest.raises(ConflictError):
        store.create(twin)
    assert [f.name for f in store.list(Function, "default")] == ["a"]


def test_runs_of_another_organization_are_not_found(store):
    run = Run(function="f", org="acme")
    store.add_runs([run], host="h")
    assert store.get_run("acme", run.id).org == "acme"
    with pytest.raises(NotFoundError):
        store.get_run("globex", run.id)
    assert store.list_runs("globex") == []


def test_meta_values_are_set_once_when_asked(store):
    assert store.get_meta("key-check") is None
    assert store.set_meta("key-check", "one", only_if_absent=True) == "one"
    assert store.set_meta("key-check", "two", only_if_absent=True) == "one"
    assert store.set_meta("key-check", "three") == "three"
    assert store.get_meta("key-check") == "three"


def test_export_and_import_copy_everything_once(store, open_store):
    store.create(Function(name="f", handler="h", org="acme"))
    store.create(Secret(name="s"))
    runs = [Run(function="f", input={"i": i}) for i in range(3)]
    store.add_runs(runs, host="h1")
    runs[0].status = RunStatus.SUCCEEDED
    runs[0].output = 42
    store.finish_runs([runs[0]])
    rows = list(store.export_entities())
    assert sorted(row[0] for row in rows) == ["function", "secret"]
    exported = store.export_runs(limit=2) + store.export_runs(after=runs[1].id)
    assert [run.id for run, _ in exported] == [run.id for run in runs]
    assert {host for _, host in exported} == {"h1"}
    assert store.import_entities(rows) == 0  # all there already: nothing changes
    store.import_runs(exported)
    assert store.get_run("default", runs[0].id).output == 42
    assert len(store.list_runs("default")) == 3


def test_claims_are_unique_across_stores_on_one_place(open_store):
    first, second = open_store(), open_store()  # as two processes would
    assert first.claim("routes", "default", "owner-a", ["k1", "k2"]) is None
    held = second.claim("routes", "default", "owner-b", ["k3", "k2"])
    assert held is not None and (held.owner, held.key) == ("owner-a", "k2") and 0 <= held.age < 60
    assert second.claim("routes", "default", "owner-b", ["k3"]) is None  # the refused claim changed nothing
    assert second.claim("routes", "other-org", "owner-c", ["k1"]) is None  # per organization
    assert second.claim("other-scope", "default", "owner-c", ["k1"]) is None  # and per scope
    # A new claim replaces the owner's old keys at once: k1 and k2 are free for others then.
    assert first.claim("routes", "default", "owner-a", ["k4"]) is None
    assert second.claim("routes", "default", "owner-b", ["k1", "k2", "k3"]) is None
    assert first.claim("routes", "default", "owner-a", ["k3"]).owner == "owner-b"
    first.release_claims("routes", "default", "owner-b")
    assert first.claim("routes", "default", "owner-a", ["k3"]) is None
    assert first.claim("routes", "default", "owner-a", []) is None  # claims nothing: holds nothing
    assert second.claim("routes", "default", "owner-b", ["k4", "k3"]) is None
