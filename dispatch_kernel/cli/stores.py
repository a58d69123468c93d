"""`dispatch store copy` and `dispatch secrets rotate-key`: commands on a store itself, not on
a server (no workers start).

    dispatch store copy --from sqlite:PATH --to postgresql://...
    dispatch secrets rotate-key                    DISPATCH_SECRET_KEY="NEW,OLD"

A copy is idempotent and resumable: what the target has already (an entity of that kind, org and
name, a run of that id) is left as it is, and runs go over in pages by id, each committed, so a
copy that stopped half-way goes on where it was when run again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..secrets import KEY_CHECK, SecretManager, load_key
from ..settings import Settings, default_home
from ..store.base import EntityStore
from .errors import CliError

PAGE = 5000  # runs per page of a copy


def open_store(location: str) -> EntityStore:
    """A store named `sqlite:PATH` (a home or its dispatch.db) or `postgresql://...`."""
    if location.startswith(("postgresql://", "postgres://")):
        from ..store.postgres import PostgresStore

        return PostgresStore(location)
    if location.startswith("sqlite:"):
        from ..store.sqlite import SqliteStore

        path = Path(location[len("sqlite:"):]).expanduser()
        if path.is_dir():
            path = path / "dispatch.db"
        if not path.exists():
            raise CliError(f"no SQLite store at {path}")
        return SqliteStore(path)
    raise CliError(f"{location!r} is not a store: use sqlite:PATH or postgresql://...")


def cmd_store_copy(args: argparse.Namespace) -> None:
    """Copy every entity and run from one store to another."""
    source = open_store(args.source)
    try:
        target = open_store(args.target)
        try:
            check = source.get_meta(KEY_CHECK)
            if check is not None and target.set_meta(KEY_CHECK, check, only_if_absent=True) != check:
                raise CliError("the target's secrets are sealed with another key than the source's: "
                               "nothing was copied")
            entities = target.import_entities(source.export_entities())
            runs, after = 0, ""
            while True:
                page = source.export_runs(after=after, limit=PAGE)
                if not page:
                    break
                target.import_runs(page)
                runs += len(page)
                after = page[-1][0].id
            print(f"copied {entities} new entities and {runs} runs (runs already there were kept) "
                  f"from {args.source.split('://')[0]} to {args.target.split('://')[0]}")
        finally:
            target.close()
    finally:
        source.close()


def cmd_secrets_rotate_key(args: argparse.Namespace) -> None:
    """Seal every secret again with the newest key of DISPATCH_SECRET_KEY."""
    settings = Settings(home=default_home())
    from .. import plugins

    store: EntityStore = plugins.load("store", settings.store)(settings)
    try:
        manager = SecretManager(store, load_key(settings.home / "secret.key"))
        manager.check_key()
        count = manager.rotate_key()
        print(f"re-sealed {count} secret(s) with the newest key; servers may now drop the old one")
    finally:
        store.close()


__all__ = ["cmd_secrets_rotate_key", "cmd_store_copy", "open_store"]
