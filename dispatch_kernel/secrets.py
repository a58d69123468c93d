"""SecretManager: named key/value maps, encrypted at rest with Fernet.

The key comes from DISPATCH_SECRET_KEY, else from a key file generated once with mode 0600.
Decrypted values live only in memory and in the worker that runs the function.

Every server of a store must use the same key: the store keeps a check value made with it (an
HMAC of a fixed text, so that starting a core needs no cipher), and a core whose key does not
make it refuses to start rather than seal secrets nobody else can read. The key may be a
comma-separated list, newest first (cryptography's MultiFernet: seal with the first, open with
any), which is how a key is rotated without downtime: start the servers with "NEW,OLD", run
`dispatch secrets rotate-key`, then drop OLD.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .credentials import CREDENTIAL_ENV as CREDENTIAL_ENV
from .credentials import KEY_ENV as KEY_ENV
from .credentials import without_credentials as without_credentials
from .model import ConflictError, DispatchError, Function, InvalidRequestError, NotFoundError, Secret, check_name
from .store.base import EntityStore

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

KEY_CHECK = "secret-key-check"  # the store's meta value made with the key of its secrets
_CHECK_TEXT = b"dispatch-kernel secret key check"
_CHECK_PREFIX = "hmac-sha256:"  # check values before this were the text sealed with Fernet


def new_key() -> bytes:
    """A new Fernet key: 32 random bytes, URL-safe base64 (what Fernet.generate_key makes)."""
    return base64.urlsafe_b64encode(os.urandom(32))


def _fernet_key_bytes(key: bytes) -> bytes:
    """The 32 bytes of one Fernet key; ValueError if it is not one (as Fernet itself checks)."""
    try:
        raw = base64.urlsafe_b64decode(key)
    except (binascii.Error, TypeError) as exc:
        raise ValueError("not URL-safe base64") from exc
    if len(raw) != 32:
        raise ValueError("a Fernet key is 32 bytes")
    return raw


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
    key = new_key()
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
    """Encrypts secret values into a Secret entity and decrypts them back.

    The cipher (cryptography's Fernet) is loaded when a secret is first sealed or opened: a
    core that only checks its key at start pays for none of it."""

    def __init__(self, key: bytes) -> None:
        try:
            self._keys = [_fernet_key_bytes(part.strip()) for part in key.split(b",") if part.strip()]
            if not self._keys:
                raise ValueError("no key")
        except ValueError as exc:
            raise DispatchError(f"{KEY_ENV} or the key file does not hold a valid Fernet key "
                                "(or a comma-separated list of them, newest first)") from exc

    @cached_property
    def _fernet(self) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        return MultiFernet([Fernet(base64.urlsafe_b64encode(raw)) for raw in self._keys])

    @staticmethod
    def _check_of(raw: bytes) -> str:
        return _CHECK_PREFIX + hmac.new(raw, _CHECK_TEXT, hashlib.sha256).hexdigest()

    def check_value(self) -> str:
        """A value made with the current key, that only a box with this key makes again."""
        return self._check_of(self._keys[0])

    def opens(self, check: str) -> bool:
        """Whether `check` is the check value of one of this box's keys (or, as stores made
        before the HMAC keep it, the check text sealed with one of them)."""
        if check.startswith(_CHECK_PREFIX):
            return any(hmac.compare_digest(check, self._check_of(raw)) for raw in self._keys)
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(check.encode()) == _CHECK_TEXT
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
        from cryptography.fernet import InvalidToken

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
        from cryptography.fernet import InvalidToken

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
