"""SecretManager: named key/value maps, encrypted at rest with Fernet.

The key comes from DISPATCH_SECRET_KEY, else from a key file generated once with mode 0600.
Decrypted values live only in memory and in the worker that runs the function.

Every server of a store must use the same key: the store keeps a check value sealed with it,
and a core whose key cannot open it refuses to start rather than seal secrets nobody else can
read. The key may be a comma-separated list, newest first (cryptography's MultiFernet: seal
with the first, open with any), which is how a key is rotated without downtime: start the
servers with "NEW,OLD", run `dispatch secrets rotate-key`, then drop OLD.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .credentials import CREDENTIAL_ENV as CREDENTIAL_ENV
from .credentials import KEY_ENV as KEY_ENV
from .credentials import without_credentials as without_credentials
from .model import ConflictError, DispatchError, Function, InvalidRequestError, NotFoundError, Secret, check_name
from .store.base import EntityStore

KEY_CHECK = "secret-key-check"  # the store's meta value sealed with the key of its secrets
_CHECK_TEXT = b"dispatch-kernel secret key check"


def load_key(key_file: Path) -> bytes:
    """The Fernet key: DISPATCH_SECRET_KEY if set, else the key file (created on first use)."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return from_env.encode()
    try:
        return key_file.read_bytes().strip()
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return key_file.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


class WrongKeyError(DispatchError):
    """This process's secret key is not the key of the store's secrets."""


class SecretBox:
    """Encrypts secret values into a Secret entity and decrypts them back."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = MultiFernet([Fernet(part.strip()) for part in key.split(b",") if part.strip()])
        except ValueError as exc:
            raise DispatchError(f"{KEY_ENV} or the key file does not hold a valid Fernet key "
                                "(or a comma-separated list of them, newest first)") from exc

    def check_value(self) -> str:
        """A value sealed with the current key, that only a box with this key opens."""
        return self._fernet.encrypt(_CHECK_TEXT).decode()

    def opens(self, token: str) -> bool:
        """Whether one of this box's keys opens `token`."""
        try:
            return self._fernet.decrypt(token.encode()) == _CHECK_TEXT
        except InvalidToken:
            return False

    def rotate(self, token: str) -> str:
        """`token` sealed again with the newest key."""
        return self._fernet.rotate(token.encode()).decode()

    def seal(self, secret: Secret, values: dict[str, str]) -> Secret:
        """Set the secret's ciphertext from `values` (keys and values must be strings)."""
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise InvalidRequestError("a secret's values must be a map of strings to strings")
        secret.ciphertext = self._fernet.encrypt(json.dumps(values).encode()).decode()
        secret.keys = sorted(values)
        return secret

    def open(self, secret: Secret) -> Secret:
        """Fill `values` from the ciphertext."""
        try:
            secret.values = json.loads(self._fernet.decrypt(secret.ciphertext.encode()))
            secret.keys = sorted(secret.values)
        except InvalidToken:
            raise DispatchError(
                f"secret {secret.name!r} cannot be decrypted with this key (was {KEY_ENV} changed?)"
            ) from None
        return secret


class SecretManager:
    """Secrets of every organization: stored sealed, opened only to be used or shown."""

    def __init__(self, store: EntityStore, key: bytes) -> None:
        self.store = store
        self.box = SecretBox(key)

    def check_key(self) -> None:
        """Refuse a key that is not the one of the store's secrets (the first core to use a
        store records its key's check value)."""
        stored = self.store.set_meta(KEY_CHECK, self.box.check_value(), only_if_absent=True)
        if not self.box.opens(stored):
            raise WrongKeyError(
                f"this server's secret key is not the key of the store's secrets: every server that "
                f"shares a store must have the same {KEY_ENV} (or key file); refusing to start rather "
                "than seal secrets the others cannot read")

    def rotate_key(self) -> int:
        """Seal every secret of every organization, and the key check, with the newest key
        (the first of DISPATCH_SECRET_KEY's list); returns how many secrets. A secret that no
        key opens stops the rotation with an error naming it, before it is changed."""
        rotated = 0
        for secret in self.store.all_entities(Secret):
            for _ in range(5):  # another server may change it meanwhile: read it again
                try:
                    secret.ciphertext = self.box.rotate(secret.ciphertext)
                except InvalidToken:
                    raise DispatchError(f"secret {secret.name!r} of {secret.org!r} cannot be opened with "
                                        f"any key of {KEY_ENV}; nothing more was rotated") from None
                try:
                    self.store.update(secret)
                    rotated += 1
                    break
                except ConflictError:
                    secret = self.store.get(Secret, secret.org, secret.name)
                except NotFoundError:
                    break
        self.store.set_meta(KEY_CHECK, self.box.check_value())
        return rotated

    def create(self, name: str, values: dict[str, str], *, org: str,
               tags: dict[str, str] | None = None) -> Secret:
        """Store a new secret, encrypted; a taken name is a ConflictError."""
        check_name("secret", name)
        return self.store.create(self.box.seal(Secret(name=name, org=org, tags=dict(tags or {})), values))

    def get(self, name: str, org: str) -> Secret:
        """The secret with its values decrypted."""
        return self.box.open(self.store.get(Secret, org, name))

    def list(self, org: str) -> list[Secret]:
        """Every secret's name and key names; never the values."""
        return self.store.list(Secret, org)

    def delete(self, name: str, org: str) -> None:
        """Remove the secret; functions that use it fail their next runs with a clear error."""
        self.store.delete(Secret, org, name)

    def require(self, names: list[str], org: str) -> None:
        """NotFoundError naming the first of `names` that is not a secret of the organization."""
        for name in names:
            self.store.get(Secret, org, name)

    def values_for(self, function: Function) -> dict[str, dict[str, str]]:
        """The decrypted values of the secrets a function uses, by secret name."""
        values = {}
        for name in function.secrets:
            try:
                secret = self.store.get(Secret, function.org, name)
            except NotFoundError:
                raise DispatchError(f"secret {name!r} used by {function.name!r} no longer exists") from None
            values[name] = self.box.open(secret).values
        return values


def redact(text: str, values: list[str]) -> str:
    """`text` with every secret value replaced by asterisks (for logs and error messages)."""
    for value in values:
        if value and value in text:
            text = text.replace(value, "********")
    return text
