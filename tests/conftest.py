"""Shared fixtures: every test gets its own Dispatch home and closes what it started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import dispatch_kernel as dk


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DISPATCH_HOME, so nothing a test does leaks into another."""
    path = tmp_path / "home"
    monkeypatch.setenv("DISPATCH_HOME", str(path))
    monkeypatch.delenv("DISPATCH_SECRET_KEY", raising=False)
    return path


@pytest.fixture
def client(home: Path) -> Iterator[dk.LocalClient]:
    """An embedded client (SQLite store, local workers) on a private home."""
    with dk.connect(home=home) as the_client:
        yield the_client


@pytest.fixture
def ip(home: Path):
    """A real IPython shell with `%load_ext dispatch_kernel`, its client on the private home."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "dispatch_kernel")
    yield shell
    shell.run_line_magic("unload_ext", "dispatch_kernel")
    shell.reset(new_session=False)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """The DSN of a new PostgreSQL database of this test's own (dropped after it)."""
    from .postgres_support import fresh_database

    with fresh_database() as dsn:
        yield dsn
