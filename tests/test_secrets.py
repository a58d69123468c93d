"""Secrets: encrypted at rest, given to functions, never in run records, logs or errors."""

import os
import stat

import pytest
from cryptography.fernet import Fernet

import dispatch_kernel as dk

WORD = "correct-horse-battery-staple"


def leaky(ctx, payload):
    word = ctx.secrets["login"]["password"]
    print("the password is", word)
    if payload.get("fail"):
        raise RuntimeError(f"could not log in with {word}")
    return {"length": len(word)}


def _files_under(path):
    for root, _, files in os.walk(path):
        for name in files:
            yield os.path.join(root, name)


def test_create_get_list_delete(client):
    created = client.create_secret("login", {"user": "ada", "password": WORD})
    assert created.keys == ["password", "user"]
    assert WORD not in repr(created)
    assert client.get_secret("login").values == {"user": "ada", "password": WORD}
    listed = client.list_secrets()
    assert [s.name for s in listed] == ["login"] and listed[0].values == {}
    assert "values" not in listed[0].public_dict() and "ciphertext" not in listed[0].public_dict()
    with pytest.raises(dk.ConflictError):
        client.create_secret("login", {"x": "y"})
    client.delete_secret("login")
    with pytest.raises(dk.NotFoundError):
        client.get_secret("login")


def test_values_must_be_strings(client):
    with pytest.raises(dk.InvalidRequestError, match="map of strings"):
        client.create_secret("bad", {"port": 5432})


def test_no_file_under_home_holds_a_secret_in_plain_text(client, home):
    client.create_secret("login", {"password": WORD})
    fn = client.deploy(leaky, secrets=["login"])
    assert fn({}) == {"length": len(WORD)}
    with pytest.raises(dk.RunFunctionError):
        fn({"fail": True})
    client.list_runs()  # apply the run journal too
    needle = WORD.encode()
    for path in _files_under(home):
        with open(path, "rb") as handle:
            assert needle not in handle.read(), path


def test_secrets_are_masked_in_logs_and_errors(client):
    client.create_secret("login", {"password": WORD})
    fn = client.deploy(leaky, secrets=["login"])
    run = client.invoke("leaky", {})
    assert run.logs["stdout"] == "the password is ********\n"
    failed = client.invoke("leaky", {"fail": True})
    assert failed.error.type == "FunctionError"
    assert WORD not in failed.error.message and WORD not in failed.error.stacktrace
    assert "********" in failed.error.message
    for stored in client.list_runs(function="leaky"):
        assert WORD not in repr(stored.to_dict())


def test_the_key_file_is_private_and_reused(home):
    with dk.connect(home=home) as client:
        client.create_secret("s", {"k": "v"})
    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with dk.connect(home=home) as again:
        assert again.get_secret("s").values == {"k": "v"}


def test_the_key_can_come_from_the_environment(home, monkeypatch):
    monkeypatch.setenv("DISPATCH_SECRET_KEY", Fernet.generate_key().decode())
    with dk.connect(home=home) as client:
        client.create_secret("s", {"k": "v"})
    assert not (home / "secret.key").exists()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", Fernet.generate_key().decode())
    # Another key than the store's: the core refuses to start, rather than seal unreadable secrets.
    with pytest.raises(dk.DispatchError, match="not the key of the store's secrets"):
        dk.connect(home=home)


def test_a_secret_no_key_opens_is_a_clear_error(home, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old)
    with dk.connect(home=home) as client:
        client.create_secret("s", {"k": "v"})
        # sealed by hand with another key, as a copy from elsewhere could be
        from dispatch_kernel.secrets import SecretBox

        secret = client.dispatch.store.get(dk.Secret, "default", "s")
        SecretBox(new.encode()).seal(secret, {"k": "v"})
        client.dispatch.store.update(secret)
        with pytest.raises(dk.DispatchError, match="cannot be decrypted"):
            client.get_secret("s")


def test_rotating_the_key_reseals_every_secret_without_downtime(home, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old)
    with dk.connect(home=home) as client:
        client.create_secret("s", {"k": "v"})
    monkeypatch.setenv("DISPATCH_SECRET_KEY", f"{new},{old}")  # both open; the new one seals
    with dk.connect(home=home) as client:
        assert client.get_secret("s").values == {"k": "v"}
        assert client.dispatch.secrets.rotate_key() == 1
    monkeypatch.setenv("DISPATCH_SECRET_KEY", new)  # the old key is gone
    with dk.connect(home=home) as client:
        assert client.get_secret("s").values == {"k": "v"}
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old)
    with pytest.raises(dk.DispatchError, match="not the key of the store's secrets"):
        dk.connect(home=home)


def test_a_store_whose_key_check_was_sealed_before_the_hmac_still_knows_its_key(home, monkeypatch):
    """Stores made before the key check became an HMAC keep the check text sealed with Fernet:
    their key is still admitted, another key still refused, and a rotation rewrites the check."""
    from dispatch_kernel.secrets import KEY_CHECK

    old, other = Fernet.generate_key(), Fernet.generate_key()
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old.decode())
    with dk.connect(home=home) as client:
        client.create_secret("s", {"k": "v"})
        sealed = Fernet(old).encrypt(b"dispatch-kernel secret key check").decode()
        client.dispatch.store.set_meta(KEY_CHECK, sealed)
    with dk.connect(home=home) as client:
        assert client.get_secret("s").values == {"k": "v"}
    monkeypatch.setenv("DISPATCH_SECRET_KEY", other.decode())
    with pytest.raises(dk.DispatchError, match="not the key of the store's secrets"):
        dk.connect(home=home)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", old.decode())
    with dk.connect(home=home) as client:
        assert client.dispatch.secrets.rotate_key() == 1
        assert client.dispatch.store.get_meta(KEY_CHECK).startswith("hmac-sha256:")
    with dk.connect(home=home) as client:
        assert client.get_secret("s").values == {"k": "v"}


def test_a_key_that_is_not_a_fernet_key_is_refused_at_start(home, monkeypatch):
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "not-a-key")
    with pytest.raises(dk.DispatchError, match="does not hold a valid Fernet key"):
        dk.connect(home=home)
    monkeypatch.setenv("DISPATCH_SECRET_KEY", "QUJD")  # base64, but 3 bytes
    with pytest.raises(dk.DispatchError, match="does not hold a valid Fernet key"):
        dk.connect(home=home)


def test_a_deleted_secret_fails_the_next_run_clearly(client):
    client.create_secret("login", {"password": WORD})
    fn = client.deploy(leaky, secrets=["login"])
    client.delete_secret("login")
    with pytest.raises(dk.RunSystemError, match="secret 'login' used by 'leaky' no longer exists"):
        fn({})
