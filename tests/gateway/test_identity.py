"""`auth: token` routes and identity: a service account's JWT is a credential there too, and
its policies decide (invoke on the route's function), on the extension and the standalone
gateway alike; the server's own token is its owner, the bootstrap administrator."""

from __future__ import annotations

import pytest

from tests.identity.keys import key_pair, token

from .conftest import Deployment, Target


@pytest.fixture(scope="module")
def accounts(deployment: Deployment):
    """Service accounts of the default organization: `caller` may invoke echo, `idle` only read
    functions, `stranger` nothing (no policy names it: a non-member, to whom nothing exists)."""
    client = deployment.client
    keys = {}
    for name in ("caller", "idle", "stranger"):
        private, public = key_pair("EC")
        client.create_service_account(name, public)
        keys[name] = private
    client.create_policy("gateway-callers", [{"subjects": ["serviceaccount:caller"], "resources": ["functions/echo"],
                                              "actions": ["invoke"]},
                                             {"subjects": ["serviceaccount:idle"], "resources": ["functions"],
                                              "actions": ["get"]}])
    yield keys
    client.delete_policy("gateway-callers")
    for name in keys:
        client.delete_service_account(name)


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_service_account_allowed_to_invoke_calls_the_route(gateway: Target, accounts):
    answer = gateway.request("GET", "default/private", headers=_bearer(token(accounts["caller"], "default/caller")))
    assert answer.status == 200, answer.body


def test_a_service_account_without_the_permission_is_403(gateway: Target, accounts):
    answer = gateway.request("GET", "default/private", headers=_bearer(token(accounts["idle"], "default/idle")))
    assert answer.status == 403
    assert answer.json["message"] == "serviceaccount:idle may not invoke functions/echo in organization 'default'"


def test_a_service_account_no_policy_names_finds_no_route(gateway: Target, accounts):
    answer = gateway.request("GET", "default/private",
                             headers=_bearer(token(accounts["stranger"], "default/stranger")))
    missing = gateway.request("GET", "default/no-such-route")
    assert answer.status == missing.status == 404
    assert answer.json["message"] == missing.json["message"].replace("no-such-route", "private")


def test_bad_jwts_are_401_on_routes(gateway: Target, accounts):
    other, _ = key_pair("EC")
    for bad in (token(accounts["caller"], "default/caller", expires_in=-120), token(other, "default/caller"),
                token(accounts["caller"], "elsewhere/caller")):
        answer = gateway.request("GET", "default/private", headers=_bearer(bad))
        assert answer.status == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_servers_token_is_still_accepted(gateway: Target, deployment: Deployment, accounts):
    assert gateway.request("GET", "default/private", headers=_bearer(deployment.token)).status == 200
