"""API route conflicts across processes: two ApiManagers over two stores opened on one place
(a SQLite file, a PostgreSQL database), as two servers have; each checks its routes against
the other's through the store's unique claims, not only against the APIs it can read."""

from __future__ import annotations

import threading

import pytest

from dispatch_kernel import apis
from dispatch_kernel.apis import CLAIMS, ApiManager
from dispatch_kernel.gateway.routes import route_keys
from dispatch_kernel.entities import Api
from dispatch_kernel.model import ConflictError
from dispatch_kernel.settings import Settings


@pytest.fixture(params=["sqlite", "postgres"])
def managers(request, tmp_path):
    """Two API managers, each over a store of its own on one shared place."""
    from dispatch_kernel import plugins

    if request.param == "sqlite":
        settings = Settings(home=tmp_path / "home", store="sqlite")
    else:
        from tests.postgres_support import fresh_database

        database = fresh_database()
        settings = Settings(home=tmp_path / "home", store=database.__enter__())
        request.addfinalizer(lambda: database.__exit__(None, None, None))
    stores = [plugins.load("store", settings.store)(settings) for _ in range(2)]
    yield [ApiManager(store) for store in stores]
    for store in stores:
        store.close()


def test_two_processes_creating_conflicting_apis_at_once_one_is_refused(managers):
    for round_ in range(20):
        start = threading.Barrier(2)
        outcomes: list[object] = [None, None]

        def create(index: int) -> None:
            start.wait()
            try:
                outcomes[index] = managers[index].create(f"race-{round_}-{index}", "fn", org="default",
                                                         paths=[f"/race/{round_}/{{id}}"])
            except ConflictError as exc:
                outcomes[index] = exc

        threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(type(o).__name__ for o in outcomes) == ["Api", "ConflictError"], outcomes
        stored = [a for a in managers[0].list("default") if a.paths == [f"/race/{round_}/{{id}}"]]
        assert len(stored) == 1


def test_a_claim_in_flight_refuses_and_one_left_behind_is_taken_over(managers, monkeypatch):
    a, b = managers
    would_be = Api(name="elsewhere", org="default", function="fn", methods=["GET"], paths=["/orders/{id}"])
    # Another server between its claim and its write: its API is not stored yet.
    assert b.store.claim(CLAIMS, "default", would_be.id, route_keys(would_be)) is None
    with pytest.raises(ConflictError, match=r"being created at this moment routes GET /orders/\{…\}"):
        a.create("mine", "fn", org="default", paths=["/orders/{order}"])
    assert a.list("default") == []
    monkeypatch.setattr(apis, "CLAIM_GRACE", 0.0)  # that server died before writing it
    assert a.create("mine", "fn", org="default", paths=["/orders/{order}"]).name == "mine"


def test_updates_disabling_and_deleting_move_the_claims(managers):
    a, b = managers
    a.create("first", "fn", org="default", paths=["/a"])
    a.update("first", org="default", paths=["/b"])
    assert b.create("second", "fn", org="default", paths=["/a"]).name == "second"  # /a was given up
    with pytest.raises(ConflictError, match="'first' already routes GET /b"):
        b.create("third", "fn", org="default", paths=["/b"])
    a.update("first", org="default", enabled=False)  # a disabled API routes nothing
    assert b.create("third", "fn", org="default", paths=["/b"]).name == "third"
    with pytest.raises(ConflictError, match="'third' already routes GET /b"):
        a.update("first", org="default", enabled=True)
    assert a.get("first", "default").enabled is False  # the refused update changed nothing
    b.delete("third", "default")
    assert a.update("first", org="default", enabled=True).enabled is True
    with pytest.raises(ConflictError):
        b.create("fourth", "fn", org="default", methods=["GET", "POST"], paths=["/b"])
