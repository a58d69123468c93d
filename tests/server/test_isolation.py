"""Isolation between organizations, exhaustively: the operations come from the OpenAPI spec, so
an endpoint added later is covered without anyone remembering to.

Organization alpha holds one entity of every kind the server can make here (a function and its
run, a secret, a subscription, a webhook event source, an API, a policy, a service account);
beta's member bea, and beta's service account bot, are administrators of beta. Against alpha's
names they get 404 exactly as for names that do not exist, in their own organization and when
they name alpha in X-Dispatch-Org; their lists never hold alpha's entities; bot's JWT is refused
outright (401) when it names alpha.
"""

from __future__ import annotations

import json
import re

import pytest
from traitlets.config import Config

from dispatch_kernel.server import openapi
from tests.identity.keys import key_pair, token

from .api import ADD_SOURCE, as_user

ALPHA = {"X-Dispatch-Org": "alpha"}
BETA = {"X-Dispatch-Org": "beta"}
BEA = as_user("bea", "beta")
# What each path's parameter names in alpha (images and dead letters cannot be made here
# without a registry or a failing delivery: their names exist nowhere, which must look the same).
NAMES = {"functions": "alpha-fn", "secrets": "alpha-secret", "subscriptions": "alpha-sub",
         "event-sources": "alpha-hook", "webhooks": "alpha-hook", "apis": "alpha-api", "images": "alpha-image",
         "base-images": "alpha-base", "dead-letters": "alpha-letter", "iam/organizations": "alpha",
         "iam/policies": "alpha-pol", "iam/serviceaccounts": "alpha-sa"}
RULE = {"subjects": ["nobody"], "resources": ["functions"], "actions": ["get"]}
# A valid body for each operation that takes one: a 404 must not hide behind a 400.
BODIES = {
    ("PUT", "/functions/{name}"): {"revision": 1, "source": {"code": ADD_SOURCE}},
    ("PUT", "/apis/{name}"): {"revision": 1, "enabled": False},
    ("PUT", "/iam/policies/{name}"): {"rules": [RULE]},
    ("POST", "/runs"): {"function": "alpha-fn", "args": [1, 2], "wait": True},
    ("POST", "/webhooks/{name}"): {"hello": "world"},
}


PARAMS = {("GET", "/iam/explain"): {"subject": "bea", "action": "get", "resource": "functions/x"}}


def operations() -> list[tuple[str, str]]:
    """(METHOD, template) of every operation in the spec."""
    return [(method.upper(), template) for template, item in openapi.spec()["paths"].items()
            for method in item if method in ("get", "post", "put", "patch", "delete")]


@pytest.fixture
def jp_server_config(dispatch_home):
    return Config({
        "ServerApp": {"jpserver_extensions": {"dispatch_kernel.server": True},
                      "identity_provider_class": "tests.server.api.TeamIdentity"},
        "DispatchApp": {"home": str(dispatch_home), "export_env": False, "owner": "owner"},
    })


def concrete(template: str, run_id: str) -> str:
    """The template with alpha's name (or run id) for its parameter, under dispatch/v1/."""
    path = template.strip("/")
    kind = "iam/" + path.split("/")[1] if path.startswith("iam/") else path.split("/")[0]
    return re.sub(r"\{[^}]+\}", run_id if kind == "runs" else NAMES.get(kind, "alpha-x"), path)


async def make_world(api):
    """alpha with one entity of each kind; beta administered by group beta and by bot."""
    for org in ("alpha", "beta"):
        assert (await api("POST", "iam/organizations", {"name": org})).status == 201
    assert (await api("POST", "iam/policies", {"name": "team", "rules": [
        {"subjects": ["group:beta", "serviceaccount:bot"], "resources": ["*"], "actions": ["*"]}]},
        headers=BETA)).status == 201
    private, public = key_pair("EC")
    assert (await api("POST", "iam/serviceaccounts", {"name": "bot", "public_key": public},
                      headers=BETA)).status == 201
    _, other = key_pair("EC")
    made = [("functions", {"name": "alpha-fn", "source": {"code": ADD_SOURCE, "handler": "add"}}),
            ("secrets", {"name": "alpha-secret", "values": {"k": "v"}}),
            ("subscriptions", {"name": "alpha-sub", "function": "alpha-fn", "event_type": "ping"}),
            ("event-sources", {"name": "alpha-hook", "type": "webhook"}),
            ("apis", {"name": "alpha-api", "function": "alpha-fn", "paths": ["/alpha"]}),
            ("iam/policies", {"name": "alpha-pol", "rules": [RULE]}),
            ("iam/serviceaccounts", {"name": "alpha-sa", "public_key": other})]
    for path, body in made:
        reply = await api("POST", path, body, headers=ALPHA)
        assert reply.status == 201, (path, reply.json)
    run = await api("POST", "runs", {"function": "alpha-fn", "args": [1, 2], "wait": True}, headers=ALPHA)
    assert run.status == 200 and run.json["output"] == 3
    return {"run": run.json["id"], "bot": token(private, "beta/bot")}


def _leaks(reply) -> bool:
    value = reply.json
    if isinstance(value, dict) and "subject" in value and "org" in value:  # whoami echoes the org asked
        value = {k: v for k, v in value.items() if k != "org"}
    return "alpha" in json.dumps(value) if value is not None else False


async def test_every_operation_hides_alpha_from_beta(api):
    world = await make_world(api)
    kept = ("functions/alpha-fn", "apis/alpha-api", "iam/policies/alpha-pol", "secrets/alpha-secret",
            "subscriptions/alpha-sub", "event-sources/alpha-hook", "iam/serviceaccounts/alpha-sa")
    before = {path: (await api("GET", path, headers=ALPHA)).json for path in kept}
    bot = {"Authorization": f"Bearer {world['bot']}"}
    problems = []
    for method, template in operations():
        path = concrete(template, world["run"])
        body = BODIES.get((method, template), {} if method in ("POST", "PUT") else None)
        params = PARAMS.get((method, template))
        named = "{" in template
        for who, headers in (("bea", {**BEA, **BETA}), ("bot", bot)):
            if template == "/runs/stream":
                continue  # it stays open in one's own organization: test_streams.py reads it
            reply = await api(method, path, body, headers=headers, params=params)
            if template == "/webhooks/{name}":
                expected = {401}  # its own credential: alpha's name is refused as a wrong token is
            elif named or template == "/runs" and method == "POST":
                expected = {404}
            elif method == "GET":
                expected = {200}
                if _leaks(reply):
                    problems.append(f"{who} {method} {path}: the answer holds alpha's entities")
            else:
                continue  # creating in one's own organization: nothing of alpha's is touched
            if reply.status not in expected:
                problems.append(f"{who} in beta: {method} {path} answered {reply.status}, not {expected}")
        # Naming alpha outright: bea is no member there, bot's token was not issued there.
        as_bea = await api(method, path, body, headers={**BEA, **ALPHA}, params=params)
        allowed_anyway = {"/openapi.json", "/iam/whoami", "/iam/organizations"} if method == "GET" else set()
        if template in allowed_anyway:
            if as_bea.status != 200 or (template != "/openapi.json" and _leaks(as_bea)):
                problems.append(f"bea in alpha: {method} {path} answered {as_bea.status} {as_bea.json}")
        elif as_bea.status != (401 if template == "/webhooks/{name}" else 404):
            problems.append(f"bea in alpha: {method} {path} answered {as_bea.status}, not 404")
        as_bot = await api(method, path, body, headers={**bot, **ALPHA}, params=params)
        if as_bot.status != 401:
            problems.append(f"bot in alpha: {method} {path} answered {as_bot.status}, not 401")
    assert not problems, "\n".join(problems)
    # Nothing of alpha's changed: its entities are all still there, as they were.
    assert {path: (await api("GET", path, headers=ALPHA)).json for path in kept} == before
    runs = (await api("GET", "runs", headers=ALPHA)).json["items"]
    assert [r["id"] for r in runs] == [world["run"]]


async def test_an_outsiders_404_is_the_same_as_for_an_organization_that_does_not_exist(api):
    await make_world(api)
    for path in ("functions/alpha-fn", "functions", "iam/policies/alpha-pol"):
        real = await api("GET", path, headers={**BEA, **ALPHA})
        made_up = await api("GET", path, headers={**BEA, "X-Dispatch-Org": "no-such-org"})
        assert real.status == made_up.status == 404
        assert real.json["message"].replace("alpha", "X") == made_up.json["message"].replace("no-such-org", "X")


def test_the_operations_come_from_the_spec():
    ops = operations()
    assert ("GET", "/iam/whoami") in ops and ("POST", "/runs/{id}/cancel") in ops
    assert len(ops) == sum(len([m for m in item if m in ("get", "post", "put", "patch", "delete")])
                           for item in openapi.spec()["paths"].values())
