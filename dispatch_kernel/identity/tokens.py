"""Service-account JWTs: verified with the account's stored public key (PyJWT, cryptography).

A program signs a short-lived token with its private key (RS256 or ES256) whose `iss` is
"{org}/{name}" and which carries `exp` and `iat`; the server looks the account up by `iss` and
verifies the signature with the algorithm of the account's key only (so `alg: none` and an
HMAC signed with the public key as its secret are refused). Any failure is an
UnauthorizedError whose message never quotes the token.
"""

from __future__ import annotations

from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..entities import ServiceAccount
from ..model import InvalidRequestError, UnauthorizedError

LEEWAY = 30.0  # seconds of clock skew tolerated on exp, iat and nbf
MIN_RSA_BITS = 2048


def key_algorithm(pem: str) -> str:
    """The JWT algorithm of a public key in PEM: RS256 for RSA (2048 bits or more), ES256 for
    an EC key on P-256; InvalidRequestError for anything else, a private key above all."""
    if "PRIVATE KEY" in pem:
        raise InvalidRequestError("that is a private key: give the public key only "
                                  "(the private key stays with the program that signs)")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise InvalidRequestError("public_key is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidRequestError(f"an RSA key needs at least {MIN_RSA_BITS} bits (this one has {key.key_size})")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise InvalidRequestError("the public key must be RSA (RS256) or EC on P-256 (ES256)")


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential has a JWT's shape (three base64url parts), as a Jupyter
    server token (hexadecimal) never does."""
    return credential.count(".") == 2 and credential.startswith("eyJ")


def issuer(token: str) -> tuple[str, str]:
    """(org, name) of the service account a token says it comes from (not yet verified)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise UnauthorizedError("the bearer token is not a well-formed JWT") from None
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss.count("/") != 1:
        raise UnauthorizedError("the JWT's iss must be ORG/SERVICEACCOUNT")
    org, _, name = iss.partition("/")
    return org, name


def verify(token: str, find: Callable[[str, str], ServiceAccount | None], *, org: str | None = None,
           leeway: float = LEEWAY) -> tuple[ServiceAccount, dict[str, Any]]:
    """The service account that signed `token`, and its claims. `find(org, name)` returns the
    stored account or None; `org`, when given, is the organization the request works in, which
    the token's issuer must belong to. UnauthorizedError for any other token."""
    iss_org, name = issuer(token)
    if org is not None and iss_org != org:
        raise UnauthorizedError(f"the JWT was issued for organization {iss_org!r}, not {org!r}")
    account = find(iss_org, name)
    if account is None or not account.public_key:
        raise UnauthorizedError(f"no service account {iss_org}/{name} to verify the JWT with")
    try:
        claims = jwt.decode(token, account.public_key, algorithms=[account.algorithm], issuer=f"{iss_org}/{name}",
                            leeway=leeway, options={"require": ["exp", "iat", "iss"]})
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("the JWT has expired") from None
    except jwt.ImmatureSignatureError:
        raise UnauthorizedError("the JWT is not valid yet (iat or nbf in the future)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise UnauthorizedError(f"the JWT lacks the {exc.claim} claim") from None
    except jwt.InvalidAlgorithmError:
        raise UnauthorizedError(f"the JWT must be signed with {account.algorithm}") from None
    except jwt.InvalidSignatureError:
        raise UnauthorizedError("the JWT's signature does not verify with the service account's key") from None
    except jwt.PyJWTError as exc:
        raise UnauthorizedError(f"the JWT is not valid: {type(exc).__name__}") from None
    return account, claims


__all__ = ["LEEWAY", "issuer", "key_algorithm", "looks_like_jwt", "verify"]
