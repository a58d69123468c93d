"""A PostgreSQL database of its own for each test that needs one.

The server at 127.0.0.1:5432 (trust auth; DISPATCH_TEST_POSTGRES overrides the admin DSN) gets a
`CREATE DATABASE dk_test_<random>` per use, dropped afterwards, so tests never see each other's
rows. A server that cannot be reached skips the test on a developer's machine and fails it under
CI=true.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

ADMIN_DSN = os.environ.get("DISPATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}"
        if CI:
            pytest.fail(f"{message} (CI=true: a missing component fails the test)")
        pytest.skip(message)


def dsn_for(database: str) -> str:
    """The admin DSN (a postgresql:// URL) with another database name."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(ADMIN_DSN)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database for the block; its DSN. Dropped (connections ended) afterwards."""
    name = f"dk_test_{secrets.token_hex(6)}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield dsn_for(name)
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


__all__ = ["ADMIN_DSN", "CI", "dsn_for", "fresh_database"]
