"""The webhook source at the core: token authentication, CloudEvents content modes, bad bodies."""

from __future__ import annotations

import json

import pytest

import dispatch_kernel as dk
from dispatch_kernel.events.sources.webhook import UnauthenticatedError
from dispatch_kernel.model import InvalidRequestError
from dispatch_kernel.settings import Settings

from .helpers import handle, wait_runs


@pytest.fixture
def core(home):
    with dk.connect(settings=Settings(home=home)) as dispatch:
        dispatch.deploy(handle, name="on_hook")
        dispatch.subscribe("on_hook", event_type="*")
        yield dispatch


@pytest.fixture
def hook(core):
    source = core.create_event_source("hook", type="webhook", config={"event_type": "git.push"})
    token = source.config["token"]
    assert "token" not in core.get_event_source("hook").config  # shown once, stored hashed
    return token


def test_plain_json_structured_and_binary_posts_become_events(core, hook):
    auth = {"Authorization": f"Bearer {hook}"}
    plain = core.dispatch.events.receive("hook", {**auth, "Content-Type": "application/json"}, b'{"ref": "main"}', org="default")
    assert plain["type"] == "git.push" and plain["data"] == {"ref": "main"}
    structured = json.dumps({"specversion": "1.0", "id": "s1", "source": "ci", "type": "build.done",
                             "data": {"ok": True}}).encode()
    core.dispatch.events.receive("hook", {**auth, "Content-Type": "application/cloudevents+json"}, structured, org="default")
    core.dispatch.events.receive("hook", {"X-Dispatch-Token": hook, "Content-Type": "application/json",
                          "ce-specversion": "1.0", "ce-id": "b1", "ce-source": "ci",
                          "ce-type": "deploy.done", "ce-region": "eu"}, b'{"env": "prod"}', org="default")
    runs = wait_runs(core, "on_hook", 3, settle=0.3)
    by_type = {r.event["type"]: r for r in runs}
    assert set(by_type) == {"git.push", "build.done", "deploy.done"}
    assert by_type["build.done"].input == {"ok": True}
    assert by_type["deploy.done"].input == {"env": "prod"}
    assert by_type["deploy.done"].event["region"] == "eu"


def test_an_unauthenticated_post_is_refused_and_creates_nothing(core, hook):
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"X-Dispatch-Token": ""}):
        with pytest.raises(UnauthenticatedError) as info:
            core.dispatch.events.receive("hook", {**headers, "Content-Type": "application/json"}, b'{"x": 1}', org="default")
        assert info.value.code == 401
    assert wait_runs(core, "on_hook", 0, settle=0.3) == []


def test_a_malformed_body_is_a_400_and_creates_nothing(core, hook):
    auth = {"Authorization": f"Bearer {hook}"}
    bad = [
        ({"Content-Type": "application/json"}, b"{not json"),
        ({"Content-Type": "application/cloudevents+json"}, b'{"specversion": "1.0", "id": "x"}'),
        ({"Content-Type": "application/cloudevents+json"}, b"[1, 2"),
        ({"ce-specversion": "1.0", "ce-id": "x", "ce-source": "s"}, b"{}"),  # no ce-type
    ]
    for headers, body in bad:
        with pytest.raises(InvalidRequestError) as info:
            core.dispatch.events.receive("hook", {**auth, **headers}, body, org="default")
        assert info.value.code == 400
    assert wait_runs(core, "on_hook", 0, settle=0.3) == []
