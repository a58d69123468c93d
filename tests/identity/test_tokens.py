"""Service-account JWTs: what verifies, and every bad token refused with a 401-coded error."""

from __future__ import annotations

import base64
import json
import logging

import jwt
import pytest

from dispatch_kernel.core import Dispatch
from dispatch_kernel.identity.policies import Principal
from dispatch_kernel.identity.tokens import LEEWAY
from dispatch_kernel.model import InvalidRequestError, UnauthorizedError
from dispatch_kernel.settings import Settings

from .keys import key_pair, private_pem, token, unsigned


@pytest.fixture
def core(tmp_path):
    with Dispatch(Settings(home=tmp_path / "home")) as core:
        core.identity.bootstrap(["owner"])
        core.identity.create_organization("ds", Principal("owner"))
        yield core


@pytest.fixture
def ec_account(core):
    private, public = key_pair("EC")
    core.identity.create_service_account("etl", "ds", public)
    return private


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_a_well_signed_token_is_its_service_account(core, kind):
    private, public = key_pair(kind)
    account = core.identity.create_service_account("etl", "ds", public)
    assert account.algorithm == ("ES256" if kind == "EC" else "RS256")
    assert core.identity.verify_token(token(private, "ds/etl")) == Principal("serviceaccount:etl")
    assert core.identity.verify_token(token(private, "ds/etl"), "ds") == Principal("serviceaccount:etl")


def test_an_expired_token_is_refused(core, ec_account):
    with pytest.raises(UnauthorizedError, match="expired") as caught:
        core.identity.verify_token(token(ec_account, "ds/etl", expires_in=-(LEEWAY + 60)))
    assert caught.value.code == 401


def test_clock_skew_within_the_leeway_is_accepted(core, ec_account):
    # Expired 10 s ago and issued 10 s "in the future" by a clock ahead of ours: within 30 s.
    assert core.identity.verify_token(token(ec_account, "ds/etl", expires_in=-10))
    assert core.identity.verify_token(token(ec_account, "ds/etl", issued=10))


def test_clock_skew_beyond_the_leeway_is_refused(core, ec_account):
    with pytest.raises(UnauthorizedError, match="expired"):
        core.identity.verify_token(token(ec_account, "ds/etl", expires_in=-(LEEWAY + 5)))
    with pytest.raises(UnauthorizedError, match="not valid yet"):
        core.identity.verify_token(token(ec_account, "ds/etl", issued=LEEWAY + 60))


def test_a_token_without_exp_is_refused(core, ec_account):
    with pytest.raises(UnauthorizedError, match="lacks the exp claim"):
        core.identity.verify_token(token(ec_account, "ds/etl", drop=("exp",)))


def test_an_unsigned_token_is_refused(core, ec_account):
    with pytest.raises(UnauthorizedError, match="must be signed with ES256"):
        core.identity.verify_token(unsigned("ds/etl"))


def test_a_token_signed_with_another_key_is_refused(core, ec_account):
    other, _ = key_pair("EC")
    with pytest.raises(UnauthorizedError, match="signature does not verify"):
        core.identity.verify_token(token(other, "ds/etl"))


def test_the_public_key_as_an_hmac_secret_is_refused(core):
    # The classic confusion: HS256 "signed" with the public key the server holds.
    _, public = key_pair("RSA")
    core.identity.create_service_account("etl", "ds", public)
    forged = jwt.api_jws.PyJWS()._algorithms["HS256"]
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    import time

    payload = base64.urlsafe_b64encode(json.dumps({"iss": "ds/etl", "exp": int(time.time()) + 60,
                                                   "iat": int(time.time())}).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(forged.sign(header + b"." + payload, public.encode())).rstrip(b"=")
    with pytest.raises(UnauthorizedError, match="must be signed with RS256"):
        core.identity.verify_token(b".".join([header, payload, signature]).decode())


def test_a_foreign_issuer_is_refused(core, ec_account):
    core.identity.create_organization("other", Principal("owner"))
    with pytest.raises(UnauthorizedError, match="issued for organization 'ds', not 'other'"):
        core.identity.verify_token(token(ec_account, "ds/etl"), "other")
    with pytest.raises(UnauthorizedError, match="no service account other/etl"):
        core.identity.verify_token(token(ec_account, "other/etl"))
    with pytest.raises(UnauthorizedError, match="iss must be ORG/SERVICEACCOUNT"):
        core.identity.verify_token(token(ec_account, "etl"))


def test_a_deleted_service_accounts_tokens_are_refused(core, ec_account):
    good = token(ec_account, "ds/etl")
    assert core.identity.verify_token(good)
    core.identity.delete_service_account("etl", "ds")
    with pytest.raises(UnauthorizedError, match="no service account ds/etl"):
        core.identity.verify_token(good)


def test_garbage_is_refused_without_quoting_it(core, caplog):
    caplog.set_level(logging.DEBUG)
    for bad in ("eyJ.not.ajwt", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"):
        with pytest.raises(UnauthorizedError) as caught:
            core.identity.verify_token(bad)
        assert bad not in str(caught.value) and bad not in caplog.text


def test_only_public_keys_of_known_kinds_are_kept(core):
    private, public = key_pair("EC")
    with pytest.raises(InvalidRequestError, match="that is a private key"):
        core.identity.create_service_account("leak", "ds", private_pem(private))
    with pytest.raises(InvalidRequestError, match="at least 2048 bits"):
        core.identity.create_service_account("weak", "ds", key_pair("RSA", 1024)[1])
    with pytest.raises(InvalidRequestError, match="not a PEM public key"):
        core.identity.create_service_account("junk", "ds", "hello")
    assert [a.name for a in core.identity.list_service_accounts("ds")] == []
    assert b"PRIVATE KEY" not in (core.settings.home / "dispatch.db").read_bytes()
