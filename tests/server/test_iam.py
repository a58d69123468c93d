"""REST iam/...: the bootstrap, organizations, policies and service accounts; a service
account's JWT on REST; users and groups of an identity provider allowed and denied per action."""

from __future__ import annotations

import logging

import pytest
from traitlets.config import Config

from dispatch_kernel.model import actor
from tests.identity.keys import key_pair, token, unsigned

from .api import ADD_SOURCE, as_user

DS = {"X-Dispatch-Org": "ds"}


@pytest.fixture
def jp_server_config(dispatch_home, request):
    config = {"ServerApp": {"jpserver_extensions": {"dispatch_kernel.server": True}},
              "DispatchApp": {"home": str(dispatch_home), "export_env": False}}
    if "team" in request.node.name:
        config["ServerApp"]["identity_provider_class"] = "tests.server.api.TeamIdentity"
        config["DispatchApp"].update(owner="owner", bootstrap_admins=["group:ops"])
    return Config(config)


async def test_a_fresh_server_makes_whoever_holds_its_token_the_administrator(api):
    me = (await api("GET", "iam/whoami")).json
    assert me["subject"] == actor() and me["organizations"] == ["default"]
    assert me["rules"] == [{"policy": "admins", "global": False, "rule": 0, "subjects": [actor()],
                            "resources": ["*"], "actions": ["*"]}]
    assert (await api("GET", "functions")).json == {"items": []}


async def test_the_last_administrator_cannot_be_removed(api):
    deleted = await api("DELETE", "iam/policies/admins")
    assert deleted.status == 409 and "without an administrator" in deleted.json["message"]
    narrowed = await api("PUT", "iam/policies/admins", {"rules": [{"subjects": [actor()], "resources": ["functions"],
                                                                   "actions": ["*"]}]})
    assert narrowed.status == 409
    assert (await api("GET", "iam/policies/admins")).json["revision"] == 1


async def test_organizations_policies_and_service_accounts_over_rest(api):
    created = await api("POST", "iam/organizations", {"name": "ds", "description": "data science"})
    assert created.status == 201 and created.headers["Location"].endswith("/iam/organizations/ds")
    assert created.json["created_by"] == actor()
    assert (await api("POST", "iam/organizations", {"name": "ds"})).status == 409
    assert (await api("POST", "iam/organizations", {"name": "no/slash"})).status == 400
    assert [o["name"] for o in (await api("GET", "iam/organizations")).json["items"]] == ["default", "ds"]
    policy = {"name": "devs", "rules": [{"subjects": ["group:ds"], "resources": ["functions", "runs"],
                                         "actions": ["*"]}]}
    assert (await api("POST", "iam/policies", policy, headers=DS)).status == 201
    bad = await api("POST", "iam/policies", {"name": "x", "rules": [{"subjects": ["a"], "resources": ["f"],
                                                                     "actions": ["launch"]}]}, headers=DS)
    assert bad.status == 400
    listed = (await api("GET", "iam/policies", headers=DS)).json["items"]
    assert [p["name"] for p in listed] == ["admins", "devs"]
    _, public = key_pair("RSA")
    account = await api("POST", "iam/serviceaccounts", {"name": "etl", "public_key": public}, headers=DS)
    assert account.status == 201 and account.json["algorithm"] == "RS256"
    assert (await api("GET", "iam/serviceaccounts/etl")).status == 404  # not in the default org
    assert (await api("GET", "iam/serviceaccounts/etl", headers=DS)).json["public_key"] == public.strip() + "\n"
    explained = await api("GET", "iam/explain", params={"subject": "group:ds", "action": "delete",
                                                        "resource": "functions/f"}, headers=DS)
    assert explained.json["allowed"] and explained.json["policy"] == "ds/devs"
    busy = await api("DELETE", "iam/organizations/default")
    assert busy.status == 409
    assert (await api("DELETE", "iam/organizations/ds")).status == 204
    assert (await api("GET", "functions", headers=DS)).status == 404


async def test_the_organization_header_is_checked(api):
    unknown = await api("GET", "functions", headers={"X-Dispatch-Org": "nowhere"})
    assert unknown.status == 404 and unknown.json["message"] == "no organization named 'nowhere'"
    assert (await api("GET", "functions", headers={"X-Dispatch-Org": "../etc"})).status == 400


async def test_a_service_accounts_jwt_is_allowed_what_its_policies_say(api, caplog):
    assert (await api("POST", "iam/organizations", {"name": "ds"})).status == 201
    for name in ("nightly-add", "daily-add"):
        assert (await api("POST", "functions", {"name": name, "source": {"code": ADD_SOURCE, "handler": "add"}},
                          headers=DS)).status == 201
    private, public = key_pair("EC")
    await api("POST", "iam/serviceaccounts", {"name": "etl", "public_key": public}, headers=DS)
    await api("POST", "iam/policies", {"name": "callers", "rules": [
        {"subjects": ["serviceaccount:etl"], "resources": ["functions/nightly-*"], "actions": ["invoke"]}]},
        headers=DS)
    bearer = {"Authorization": f"Bearer {token(private, 'ds/etl')}"}
    run = await api("POST", "runs", {"function": "nightly-add", "args": [2, 3], "wait": True}, headers=bearer)
    assert run.status == 200 and run.json["output"] == 5
    caplog.set_level(logging.WARNING, logger="dispatch_kernel.audit")
    denied = await api("POST", "runs", {"function": "daily-add", "args": [2, 3]}, headers=bearer)
    assert denied.status == 403
    assert denied.json["message"] == "serviceaccount:etl may not invoke functions/daily-add in organization 'ds'"
    assert (await api("GET", "functions", headers=bearer)).status == 403
    assert "denied subject=serviceaccount:etl org=ds resource=functions/daily-add action=invoke" in caplog.text
    runs = (await api("GET", "runs", headers=DS)).json["items"]
    assert [r["function"] for r in runs] == ["nightly-add"]  # the denied one never started


async def test_bad_jwts_on_rest_are_401_and_never_logged(api, caplog):
    assert (await api("POST", "iam/organizations", {"name": "ds"})).status == 201
    private, public = key_pair("EC")
    await api("POST", "iam/serviceaccounts", {"name": "etl", "public_key": public}, headers=DS)
    other, _ = key_pair("EC")
    caplog.set_level(logging.DEBUG)
    bad = {"expired": token(private, "ds/etl", expires_in=-120), "unsigned": unsigned("ds/etl"),
           "wrong key": token(other, "ds/etl"), "foreign": token(private, "default/etl"),
           "no exp": token(private, "ds/etl", drop=("exp",))}
    for why, jwt in bad.items():
        reply = await api("GET", "functions", headers={"Authorization": f"Bearer {jwt}"})
        assert reply.status == 401, why
        assert reply.headers["WWW-Authenticate"].startswith("Bearer"), why
        assert jwt not in caplog.text and jwt not in reply.json["message"], why
    named = await api("GET", "functions", headers={"Authorization": f"Bearer {token(private, 'ds/etl')}",
                                                   "X-Dispatch-Org": "default"})
    assert named.status == 401 and "issued for organization 'ds'" in named.json["message"]


@pytest.mark.parametrize("action", ["get", "create", "update", "delete", "invoke"])
async def test_team_users_may_do_what_their_groups_policies_allow(api, action):
    ada = as_user("ada", "ds")
    await api("POST", "iam/policies", {"name": "one", "rules": [
        {"subjects": ["group:ds"], "resources": ["apis", "functions/add"], "actions": [action]}]})
    assert (await api("POST", "functions", {"name": "add", "source": {"code": ADD_SOURCE, "handler": "add"}}
                      )).status == 201
    attempts = {
        "get": ("GET", "apis", None),
        "create": ("POST", "apis", {"name": "b", "function": "add", "paths": ["/b"], "auth": "token"}),
        "update": ("PUT", "apis/a", {"revision": 1, "enabled": False}),
        "delete": ("DELETE", "apis/a", None),
        "invoke": ("POST", "runs", {"function": "add", "args": [1, 1], "wait": True}),
    }
    for tried, (method, path, body) in attempts.items():
        await api("POST", "apis", {"name": "a", "function": "add", "paths": ["/a"]})  # the owner's (409 if there)
        reply = await api(method, path, body, headers=ada)
        if tried == action:
            assert reply.status < 300, (tried, reply.json)
        else:
            assert reply.status == 403, (tried, reply.status)
            assert f"ada may not {tried} " in reply.json["message"]
    assert (await api("GET", "secrets", headers=ada)).status == 403
    assert (await api("GET", "functions", headers=as_user("bob", "finance"))).status == 404  # not a member


async def test_team_users_may_publish_or_subscribe_only_functions_they_may_invoke(api):
    """A public route, a subscription run their function for others later: who makes one must
    be allowed to invoke it, or a right to create APIs would be a right to run anything."""
    ada = as_user("ada", "ds")
    assert (await api("POST", "iam/policies", {"name": "builders", "rules": [
        {"subjects": ["group:ds"], "resources": ["apis", "subscriptions"], "actions": ["*"]},
        {"subjects": ["group:ds"], "resources": ["functions/mine"], "actions": ["invoke"]}]})).status == 201
    for name in ("mine", "theirs"):
        assert (await api("POST", "functions", {"name": name, "source": {"code": ADD_SOURCE, "handler": "add"}}
                          )).status == 201
    refused = {
        "public API": ("POST", "apis", {"name": "p", "function": "theirs", "paths": ["/p"]}),
        "subscription": ("POST", "subscriptions", {"name": "s", "function": "theirs", "event_type": "x.y"}),
    }
    for what, (method, path, body) in refused.items():
        reply = await api(method, path, body, headers=ada)
        assert reply.status == 403, what
        assert reply.json["message"] == "ada may not invoke functions/theirs in organization 'default'", what
    assert (await api("GET", "apis")).json["items"] == [] and (await api("GET", "subscriptions")).json["items"] == []
    # What the caller may invoke, and token routes (their callers are checked at the gateway), go.
    assert (await api("POST", "apis", {"name": "p", "function": "mine", "paths": ["/p"]}, headers=ada)).status == 201
    assert (await api("POST", "subscriptions", {"name": "s", "function": "mine", "event_type": "x.y"},
                      headers=ada)).status == 201
    token_route = {"name": "t", "function": "theirs", "paths": ["/t"], "auth": "token"}
    assert (await api("POST", "apis", token_route, headers=ada)).status == 201
    # Opening that route to the public, or pointing the public one at theirs, needs invoke too.
    for name, change in (("t", {"auth": "public"}), ("p", {"function": "theirs"})):
        revision = (await api("GET", f"apis/{name}")).json["revision"]
        reply = await api("PUT", f"apis/{name}", {"revision": revision, **change}, headers=ada)
        assert reply.status == 403 and "may not invoke functions/theirs" in reply.json["message"], change
    revision = (await api("GET", "apis/p")).json["revision"]
    assert (await api("PUT", "apis/p", {"revision": revision, "paths": ["/p2"]}, headers=ada)).status == 200
    assert (await api("GET", "apis/t")).json["auth"] == "token"


async def test_team_bootstrap_admins_and_recorded_actors(api):
    carol = as_user("carol", "ops")  # bootstrap_admins names group:ops
    made = await api("POST", "functions", {"name": "add", "source": {"code": ADD_SOURCE, "handler": "add"}},
                     headers=carol)
    assert made.status == 201 and made.json["created_by"] == "carol"
    await api("POST", "iam/policies", {"name": "devs", "rules": [
        {"subjects": ["dan"], "resources": ["functions"], "actions": ["*"]}]}, headers=carol)
    changed = await api("PUT", "functions/add", {"revision": made.json["revision"],
                                                 "source": {"code": ADD_SOURCE + "\n# v2\n", "handler": "add"}},
                        headers=as_user("dan"))
    assert changed.status == 200 and (changed.json["created_by"], changed.json["updated_by"]) == ("carol", "dan")
    me = (await api("GET", "iam/whoami", headers=as_user("dan"))).json
    assert me["subject"] == "dan" and me["organizations"] == ["default"]
    assert (await api("GET", "iam/whoami")).json["subject"] == "owner"
