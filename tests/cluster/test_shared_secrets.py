"""Secrets on a shared store: the key is rotated while another server's runs read them."""

from __future__ import annotations

import threading

from cryptography.fernet import Fernet

import dispatch_kernel as dk


def reveal(ctx, payload):
    return ctx.secrets["login"]["password"]


def test_rotating_the_key_while_runs_read_secrets_fails_none(tmp_path, pg_dsn, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old)
    with dk.connect(home=tmp_path / "first", store=pg_dsn) as first:
        first.create_secret("login", {"password": "hunter2"})
        first.deploy(reveal, secrets=["login"])
    monkeypatch.setenv("DISPATCH_SECRET_KEY", f"{new},{old}")  # servers restarted with both keys
    with dk.connect(home=tmp_path / "runner", store=pg_dsn) as runner, \
            dk.connect(home=tmp_path / "rotator", store=pg_dsn) as rotator:
        outputs: list[object] = []
        stop = threading.Event()

        def keep_running() -> None:
            while not stop.is_set() and len(outputs) < 5000:  # bounded either way
                outputs.append(runner.invoke("reveal", {}).output)

        thread = threading.Thread(target=keep_running)
        thread.start()
        try:
            assert rotator.dispatch.secrets.rotate_key() == 1
            for _ in range(20):  # and runs go on after it
                outputs.append(runner.invoke("reveal", {}).output)
        finally:
            stop.set()
            thread.join(60)
        assert outputs and set(outputs) == {"hunter2"}
    monkeypatch.setenv("DISPATCH_SECRET_KEY", new)  # the old key is dropped
    with dk.connect(home=tmp_path / "later", store=pg_dsn) as later:
        assert later.invoke("reveal", {}).output == "hunter2"
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old)  # a server left on the old key alone is refused
    try:
        dk.connect(home=tmp_path / "stale", store=pg_dsn)
    except dk.DispatchError as exc:
        assert "not the key of the store's secrets" in str(exc)
    else:
        raise AssertionError("a server with the old key started")
