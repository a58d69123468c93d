"""Policies: allow and deny for each action, wildcards, groups, service accounts, global
policies; the bootstrap; the last administrator; the audit line of every denial."""

from __future__ import annotations

import logging

import pytest

from dispatch_kernel.core import Dispatch
from dispatch_kernel.identity import ACTIONS, Principal
from dispatch_kernel.model import (ConflictError, Function, ForbiddenError, InvalidRequestError, NotFoundError,
                                   acting_as)
from dispatch_kernel.settings import Settings

ADA = Principal("ada@example.org", ("ds",))
BOB = Principal("bob@example.org", ("finance",))
ETL = Principal("serviceaccount:etl")


@pytest.fixture(params=["sqlite", "postgres"])
def core(request, tmp_path):
    """A core on either store: identity is kept through the generic EntityStore API."""
    store = "sqlite"
    if request.param == "postgres":
        from tests.postgres_support import fresh_database

        database = fresh_database()
        store = database.__enter__()
        request.addfinalizer(lambda: database.__exit__(None, None, None))
    with Dispatch(Settings(home=tmp_path / "home", store=store)) as core:
        assert core.identity.bootstrap(["owner", "group:ops"])
        core.identity.create_organization("ds", Principal("owner"))
        yield core


def allowed(core, principal, action, resource, org="ds"):
    return core.identity.decide(org, principal, action, resource).allowed


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_is_allowed_only_when_a_rule_names_it(core, action):
    core.identity.create_policy("one", "ds", [{"subjects": ["ada@example.org"], "resources": ["functions"],
                                               "actions": [action]}])
    for other in ACTIONS:
        assert allowed(core, ADA, other, "functions/f") == (other == action), other
        assert allowed(core, ADA, other, "functions") == (other == action), other
    assert not allowed(core, ADA, action, "secrets/s")


def test_a_name_pattern_covers_matching_names_only(core):
    core.identity.create_policy("callers", "ds", [{"subjects": ["serviceaccount:etl"],
                                                   "resources": ["functions/nightly-*"], "actions": ["invoke"]}])
    assert allowed(core, ETL, "invoke", "functions/nightly-report")
    assert not allowed(core, ETL, "invoke", "functions/daily-report")
    assert not allowed(core, ETL, "invoke", "functions")  # the kind is more than its nightly ones
    assert not allowed(core, ETL, "get", "functions/nightly-report")


def test_groups_and_subject_wildcards(core):
    core.identity.create_policy("devs", "ds", [{"subjects": ["group:ds"], "resources": ["functions", "runs"],
                                                "actions": ["*"]},
                                               {"subjects": ["*"], "resources": ["apis"], "actions": ["get"]}])
    assert allowed(core, ADA, "delete", "functions/x") and allowed(core, ADA, "get", "runs/123")
    assert not allowed(core, BOB, "get", "functions/x")
    assert allowed(core, BOB, "get", "apis/hello") and not allowed(core, BOB, "create", "apis")
    assert not allowed(core, ADA, "get", "secrets")


def test_global_policies_apply_in_every_organization(core):
    core.identity.create_organization("finance", Principal("owner"))
    core.identity.create_policy("readers", "default", [{"subjects": ["group:finance"], "resources": ["functions"],
                                                        "actions": ["get"]}], is_global=True)
    for org in ("default", "ds", "finance"):
        assert allowed(core, BOB, "get", "functions/f", org), org
        assert not allowed(core, BOB, "invoke", "functions/f", org), org
    assert [p.name for p in core.identity.list_policies("ds")] == ["admins", "readers"]
    core.identity.delete_policy("readers", "default", is_global=True)
    assert not allowed(core, BOB, "get", "functions/f", "ds")


def test_the_bootstrap_makes_the_owner_and_the_named_admins_administrators_once(core):
    assert allowed(core, Principal("owner"), "delete", "policies/admins", "default")
    assert allowed(core, Principal("carol", ("ops",)), "create", "functions", "default")
    assert not allowed(core, Principal("carol"), "get", "functions", "default")
    assert core.identity.bootstrap(["someone-else"]) is False  # an existing store is left alone
    assert not allowed(core, Principal("someone-else"), "get", "functions", "default")


def test_the_last_administrator_cannot_be_removed(core):
    with pytest.raises(ConflictError, match="without an administrator"):
        core.identity.delete_policy("admins", "ds")
    with pytest.raises(ConflictError, match="without an administrator"):
        core.identity.update_policy("admins", "ds", [{"subjects": ["owner"], "resources": ["functions"],
                                                      "actions": ["*"]}])
    assert allowed(core, Principal("owner"), "delete", "policies/admins")  # nothing changed
    core.identity.create_policy("more", "ds", [{"subjects": ["ada@example.org"], "resources": ["*"],
                                                "actions": ["*"]}])
    core.identity.delete_policy("admins", "ds")  # ada administers ds now
    assert allowed(core, ADA, "delete", "policies/more") and not allowed(core, Principal("owner"), "get", "functions")


def test_bad_rules_are_refused_and_nothing_is_stored(core):
    for rules, message in (([], "at least one rule"),
                           ([{"subjects": ["a"], "resources": ["functions"]}], "actions must be"),
                           ([{"subjects": ["a"], "resources": ["functions"], "actions": ["launch"]}],
                            "unknown action 'launch'"),
                           ([{"subjects": [], "resources": ["x"], "actions": ["get"]}], "subjects must be"),
                           ([{"subjects": ["a"], "resources": ["x"], "actions": ["get"], "extra": []}],
                            "exactly subjects")):
        with pytest.raises(InvalidRequestError, match=message):
            core.identity.create_policy("bad", "ds", rules)
    assert [p.name for p in core.identity.list_policies("ds")] == ["admins"]


def test_authorize_hides_other_organizations_and_names_what_is_denied(core, caplog):
    core.identity.create_policy("readers", "ds", [{"subjects": ["group:ds"], "resources": ["functions"],
                                                   "actions": ["get"]}])
    caplog.set_level(logging.WARNING, logger="dispatch_kernel.audit")
    core.identity.authorize("ds", ADA, "get", "functions/f")
    with pytest.raises(ForbiddenError, match="ada@example.org may not delete functions/f in organization 'ds'"):
        core.identity.authorize("ds", ADA, "delete", "functions/f")
    with pytest.raises(NotFoundError) as outsider:
        core.identity.authorize("ds", BOB, "get", "functions/f")
    with pytest.raises(NotFoundError) as nowhere:
        core.identity.authorize("no-such-org", BOB, "get", "functions/f")
    assert str(outsider.value) == "no organization named 'ds'"
    assert str(nowhere.value) == "no organization named 'no-such-org'"
    audit = [r.getMessage() for r in caplog.records if r.name == "dispatch_kernel.audit"]
    assert audit == ["denied subject=ada@example.org org=ds resource=functions/f action=delete member=True",
                     "denied subject=bob@example.org org=ds resource=functions/f action=get member=False",
                     "denied subject=bob@example.org org=no-such-org resource=functions/f action=get member=False"]


def test_explain_names_the_deciding_rule(core):
    core.identity.create_policy("callers", "ds", [{"subjects": ["serviceaccount:etl"],
                                                   "resources": ["functions/nightly-*"], "actions": ["invoke"]}])
    yes = core.identity.explain("ds", "serviceaccount:etl", "invoke", "functions/nightly-a")
    assert yes["allowed"] and yes["policy"] == "ds/callers" and yes["rule"] == 0
    no = core.identity.explain("ds", "serviceaccount:etl", "delete", "functions/nightly-a")
    assert not no["allowed"] and "no rule allows it" in no["explanation"]
    stranger = core.identity.explain("ds", "mallory", "get", "functions")
    assert "no policy of this organization names mallory" in stranger["explanation"]


def test_a_policy_change_is_seen_at_once_and_by_another_process(core, tmp_path):
    assert not allowed(core, ADA, "get", "functions")
    core.identity.create_policy("p", "ds", [{"subjects": ["ada@example.org"], "resources": ["functions"],
                                             "actions": ["get"]}])
    assert allowed(core, ADA, "get", "functions")
    same = Settings(home=core.settings.home, store=core.settings.store, plugin_options=core.settings.plugin_options)
    with Dispatch(same) as other:  # the same store, another core
        assert other.identity.decide("ds", ADA, "get", "functions").allowed
        other.identity.delete_policy("p", "ds")
    assert not allowed(core, ADA, "get", "functions")


def test_entities_record_who_created_and_changed_them(core):
    policy = acting_as("ada", core.identity.create_policy, "p", "ds",
                       [{"subjects": ["x"], "resources": ["functions"], "actions": ["get"]}])
    assert policy.created_by == policy.updated_by == "ada"
    changed = acting_as("bob", core.identity.update_policy, "p", "ds",
                        [{"subjects": ["y"], "resources": ["functions"], "actions": ["get"]}])
    assert (changed.created_by, changed.updated_by) == ("ada", "bob")
    assert core.identity.get_policy("p", "ds").updated_by == "bob"
    assert Function.from_dict(Function(name="f").to_dict()).created_by  # every entity has one
    assert Function.from_dict({"name": "older"}).created_by == ""  # stored before: nobody known


def test_organizations_are_listed_to_their_members_and_deleted_when_empty(core):
    core.identity.create_policy("devs", "ds", [{"subjects": ["group:ds"], "resources": ["functions"],
                                                "actions": ["get"]}])
    assert [o.name for o in core.identity.list_organizations(ADA)] == ["ds"]
    assert [o.name for o in core.identity.list_organizations(BOB)] == []
    with pytest.raises(ConflictError, match="default organization"):
        core.identity.delete_organization("default")
    core.identity.delete_organization("ds")
    assert core.identity.list_policies("ds") == []
    with pytest.raises(NotFoundError):
        core.identity.authorize("ds", Principal("owner"), "get", "functions")
