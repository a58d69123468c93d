"""The vCenter source across two real `jupyter dispatch` servers on one PostgreSQL database: it
runs on the server that holds its lease, and when that server is killed the other takes it over
from the shared checkpoint, so the events that happen around the kill run once each.

The simulator is VMware's own (govmomi's vcsim, tests/vcsim); a power-off is a real vSphere
event read through an EventHistoryCollector.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter

import psycopg
import pytest

from dispatch_kernel.model import RunStatus
from tests.events.conftest import nats_url, vcsim, vcsim_binary  # noqa: F401 (fixtures)
from tests.events.helpers import drop_stream, handle
from tests.vcsim import power_off, virtual_machines

from .test_two_servers import Pair, until

pytestmark = pytest.mark.timeout(600)  # the first test of a session builds the simulator


@pytest.fixture(params=["sqlite", "nats"])
def pair(request, tmp_path):
    """Two servers on one database, each with its own SQLite bus or sharing one NATS stream."""
    from tests.postgres_support import fresh_database

    extra = []
    stream = ""
    if request.param == "nats":
        nats = request.getfixturevalue("nats_url")
        stream = f"TEST_{uuid.uuid4().hex[:12].upper()}"
        config = tmp_path / "dispatch_config.py"
        config.write_text('c.DispatchApp.bus = "nats"\n'
                          f'c.DispatchApp.plugin_options = {{"nats": {{"url": {nats!r}, "stream": {stream!r}}}}}\n')
        extra = [f"--config={config}"]
    with fresh_database() as dsn:
        servers = Pair(tmp_path, dsn, extra=extra)
        try:
            yield servers
        finally:
            servers.stop()
            if stream:
                drop_stream(request.getfixturevalue("nats_url"), stream)


def _lease_holder(dsn: str, source_id: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT holder FROM leases WHERE name=%s AND expires > now()",
                           (f"event-source:{source_id}",)).fetchone()
    return row[0] if row else None


def _following(dsn: str, source_id: str) -> bool:
    """The source has connected and checkpointed where it follows from."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT value FROM source_state WHERE source=%s", (source_id,)).fetchone()
    return bool(row and json.loads(row[0]).get("instance"))


def _powered_off(client) -> Counter:
    """How many runs each VM's power-off started, over every run of the subscriber."""
    return Counter(r.input["vm"]["name"] for r in client.list_runs(function="on_vm", limit=1000)
                   if r.event and r.event["type"] == "vm.powered.off")


def test_the_server_holding_a_vcenter_source_is_killed_and_the_other_resumes_without_gap_or_duplicate(
        pair, vcsim):  # noqa: F811
    a, b = pair.clients
    si = vcsim.connect()
    vms = virtual_machines(si)
    assert len(vms) >= 4
    a.deploy(handle, name="on_vm")
    a.subscribe("on_vm", event_type="vm.powered.off")
    a.create_secret("vc-login", {"username": vcsim.user, "password": vcsim.password})
    source = b.create_event_source("vc", type="vcenter", config={"url": vcsim.plain_url, "poll": 0.1},
                                   secrets=["vc-login"])
    holder = until(lambda: _lease_holder(pair.dsn, source.id), what="a server taking the source's lease")
    until(lambda: _following(pair.dsn, source.id), what="the source following the vCenter")
    servers = {pair.a.process.pid: (pair.a, a), pair.b.process.pid: (pair.b, b)}
    [pid] = [pid for pid in servers if f"-{pid}-" in holder]
    killed_server, _ = servers.pop(pid)
    [(_, survivor)] = servers.values()

    power_off(vms[0])  # seen by the holder, before the kill
    until(lambda: [r for r in survivor.list_runs(function="on_vm")
                   if r.input["vm"]["name"] == vms[0].name and r.status == RunStatus.SUCCEEDED],
          what="the first power-off's run")
    os.kill(pid, signal.SIGKILL)
    killed_server.process.wait(10)
    power_off(vms[1])  # while no server follows the vCenter
    power_off(vms[2])
    took_over = until(lambda: (lambda h: h if h and f"-{pid}-" not in h else None)(
        _lease_holder(pair.dsn, source.id)), what="the other server taking the lease")
    assert f"-{pid}-" not in took_over
    power_off(vms[3])  # after the takeover

    names = [vm.name for vm in vms[:4]]
    until(lambda: all(_powered_off(survivor)[name] for name in names), what="a run for every power-off")
    time.sleep(2)  # room for a duplicate to show up, if one were coming
    counts = _powered_off(survivor)
    assert {name: counts[name] for name in names} == dict.fromkeys(names, 1), counts
    runs = [r for r in survivor.list_runs(function="on_vm", limit=1000) if r.input["vm"]["name"] in names[1:]]
    until(lambda: all(RunStatus(survivor.get_run(r.id).status).finished for r in runs), what="the runs finishing")
    assert {survivor.get_run(r.id).status for r in runs} == {RunStatus.SUCCEEDED}
    assert survivor.get_event_source("vc").status == "RUNNING"
