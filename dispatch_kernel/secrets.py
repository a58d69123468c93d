"""Secrets: named key/value maps, encrypted at rest with Fernet.

The key comes from DISPATCH_SECRET_KEY, else from a key file generated once with mode 0600.
Decrypted values live only in memory and in the worker that runs the function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .model import DispatchError, InvalidRequestError, Secret

KEY_ENV = "DISPATCH_SECRET_KEY"


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


class SecretBox:
    """Encrypts secret values into a Secret entity and decrypts them back."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise DispatchError(f"{KEY_ENV} or the key file does not hold a valid Fernet key") from exc

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


def redact(text: str, values: list[str]) -> str:
    """`text` with every secret value replaced by asterisks (for logs and error messages)."""
    for value in values:
        if value and value in text:
            text = text.replace(value, "********")
    return text
