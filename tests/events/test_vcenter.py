"""The vCenter source against VMware's own simulator (govmomi's vcsim), driven by pyvmomi."""

from __future__ import annotations

import time

import pytest

import dispatch_kernel as dk
from dispatch_kernel.events.sources.vcenter import event_type
from dispatch_kernel.model import InvalidRequestError, RunStatus
from dispatch_kernel.settings import Settings

from .helpers import handle, wait_runs
from tests.vcsim import power_off, virtual_machines

pytestmark = pytest.mark.timeout(600)  # the first test builds the simulator (about a minute)


def _wait_following(core: dk.LocalClient, name: str, timeout: float = 20) -> None:
    source = core.get_event_source(name)
    deadline = time.monotonic() + timeout
    while not core.dispatch.events.state.get(source.id).get("instance"):
        assert time.monotonic() < deadline, f"source {name} never connected: {core.get_event_source(name)}"
        time.sleep(0.05)


def test_event_type_names():
    from pyVmomi import vim

    assert event_type(vim.event.VmPoweredOffEvent()) == "vm.powered.off"
    assert event_type(vim.event.DrsVmPoweredOnEvent()) == "drs.vm.powered.on"
    assert event_type(vim.event.EventEx(eventTypeId="com.example.thing")) == "com.example.thing"


def test_power_off_runs_the_subscriber_and_a_restart_resumes_without_gap_or_duplicate(home, vcsim):
    settings = Settings(home=home)
    si = vcsim.connect()
    vms = virtual_machines(si)
    with dk.connect(settings=settings) as core:
        core.deploy(handle, name="on_vm")
        core.subscribe("on_vm", event_type="vm.powered.off")
        core.create_secret("vc-login", {"username": vcsim.user, "password": vcsim.password})
        core.create_event_source("vc", type="vcenter", config={"url": vcsim.plain_url, "poll": 0.1},
                                 secrets=["vc-login"])
        _wait_following(core, "vc")
        power_off(vms[0])
        [run] = wait_runs(core, "on_vm", 1, timeout=20)
        assert run.status == RunStatus.SUCCEEDED
        assert run.event["type"] == "vm.powered.off"
        assert run.event["subject"] == vms[0].name
        assert run.event["source"] == vcsim.plain_url
        assert run.input["vm"]["name"] == vms[0].name
        assert run.input["eventType"] == "VmPoweredOffEvent"
        assert run.output["event"]["id"] == run.event["id"]
        assert core.get_event_source("vc").status == "RUNNING"
        assert "password" not in str(core.get_event_source("vc").to_dict())

    power_off(vms[1])  # while no process follows the vCenter
    with dk.connect(settings=settings) as core:
        power_off(vms[2])
        runs = wait_runs(core, "on_vm", 3, timeout=20, settle=1.0)
        names = sorted(r.input["vm"]["name"] for r in runs)
        assert names == sorted(vm.name for vm in vms[:3])  # no gap, no duplicate
        keys = [r.input["key"] for r in sorted(runs, key=lambda r: r.input["key"])]
        assert len(set(keys)) == 3


def test_the_source_reconnects_when_its_session_is_dropped(home, vcsim):
    si = vcsim.connect()
    vms = virtual_machines(si)
    with dk.connect(settings=Settings(home=home)) as core:
        core.deploy(handle, name="on_vm")
        core.subscribe("on_vm", event_type="vm.*")
        core.create_secret("vc-login", {"username": vcsim.user, "password": vcsim.password})
        core.create_event_source("vc", type="vcenter", config={"url": vcsim.plain_url, "poll": 0.1},
                                 secrets=["vc-login"])
        _wait_following(core, "vc")
        manager = si.RetrieveContent().sessionManager
        mine = manager.currentSession.key
        for session in manager.sessionList:
            if session.key != mine:
                manager.TerminateSession([session.key])
        deadline = time.monotonic() + 15
        while core.dispatch.events.source_restarts("vc", "default") == 0:
            assert time.monotonic() < deadline, "the source did not notice its session ended"
            time.sleep(0.05)
        power_off(vms[3])
        runs = wait_runs(core, "on_vm", 1, timeout=20, settle=0.5)
        assert [r.input["vm"]["name"] for r in runs if r.event["type"] == "vm.powered.off"] == [vms[3].name]
        deadline = time.monotonic() + 10
        while core.get_event_source("vc").status != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_vcenter_source_needs_a_url_and_credentials(home):
    with dk.connect(settings=Settings(home=home)) as core:
        with pytest.raises(InvalidRequestError):
            core.create_event_source("vc", type="vcenter", config={})
        with pytest.raises(InvalidRequestError):
            core.create_event_source("vc", type="vcenter", config={"url": "https://vc.example/sdk"})
        with pytest.raises(InvalidRequestError):  # credentials belong in an (encrypted) secret
            core.create_event_source("vc", type="vcenter", config={"url": "https://u:p@vc.example/sdk"})
        assert core.list_event_sources() == []
