"""Service-account keys and JWTs for tests, made with cryptography and PyJWT as a program would."""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def key_pair(kind: str = "EC", bits: int = 2048) -> tuple[Any, str]:
    """(private key, public key PEM) of an EC P-256 or RSA key."""
    private = ec.generate_private_key(ec.SECP256R1()) if kind == "EC" else rsa.generate_private_key(65537, bits)
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def private_pem(private: Any) -> str:
    """The private key as PKCS#8 PEM."""
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def token(private: Any, iss: str, *, expires_in: float = 300, issued: float = 0, algorithm: str | None = None,
          claims: dict[str, Any] | None = None, drop: tuple[str, ...] = ()) -> str:
    """A JWT signed with `private`: iss, exp (now + expires_in), iat (now + issued)."""
    now = time.time()
    body = {"iss": iss, "exp": int(now + expires_in), "iat": int(now + issued), "sub": iss, **(claims or {})}
    for key in drop:
        body.pop(key, None)
    if algorithm is None:
        algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
    return jwt.encode(body, private, algorithm=algorithm)


def unsigned(iss: str, expires_in: float = 300) -> str:
    """A JWT with `alg: none` (no signature)."""
    now = time.time()
    return jwt.encode({"iss": iss, "exp": int(now + expires_in), "iat": int(now)}, None, algorithm="none")
