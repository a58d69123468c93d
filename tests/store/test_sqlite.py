"""What is SQLite's own: the file is in WAL mode and versioned with PRAGMA user_version."""

import sqlite3

from dispatch_kernel.store.sqlite import MIGRATIONS, SqliteStore


def test_a_new_file_is_migrated_to_the_latest_schema_in_wal_mode(tmp_path):
    store = SqliteStore(tmp_path / "dispatch.db")
    try:
        assert store.schema_version == len(MIGRATIONS)
        db = sqlite3.connect(store.path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
    finally:
        store.close()
