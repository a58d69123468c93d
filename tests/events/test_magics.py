"""%dispatch emit / subscribe / sources in a real IPython shell."""

from __future__ import annotations

import pytest

from ..shell import run
from .helpers import handle, wait_runs


def test_subscribe_emit_and_sources(ip):
    client = ip.magics_manager.registry["DispatchMagics"].client
    client.deploy(handle, name="on_order")
    result, out = run(ip, "%dispatch subscribe on_order --event-type order.*")
    assert result.success and "order.* -> on_order" in out.stdout
    result, out = run(ip, '%dispatch emit order.created {"id": 7, "note": "two words"} --source shop')
    assert result.success and "emitted order.created" in out.stdout
    [run_record] = wait_runs(client, "on_order", 1)
    assert run_record.input == {"id": 7, "note": "two words"} and run_record.event["source"] == "shop"
    client.create_event_source("nightly", type="schedule", config={"cron": "0 2 * * *"})
    result, out = run(ip, "%dispatch sources")
    assert "nightly  schedule" in out.stdout and "order.* -> on_order" in out.stdout
    result, out = run(ip, "%dispatch emit order.created {bad")
    assert not result.success and "not valid JSON" in str(result.error_in_exec)
    result, out = run(ip, "%dispatch subscribe on_order")
    assert not result.success and "--event-type" in str(result.error_in_exec)


def test_subscribe_emit_and_sources_over_rest(ip, home, tmp_path):
    from tests.server.live import ThreadedServer

    server = ThreadedServer(home, tmp_path / "server")
    try:
        result, out = run(ip, f"%dispatch connect {server.url} --token {server.token}")
        assert result.success and server.url in out.stdout
        client = ip.magics_manager.registry["DispatchMagics"].client
        client.deploy(handle, name="on_order")
        result, out = run(ip, "%dispatch subscribe on_order --event-type order.* --filter source=shop")
        assert result.success and "order.* -> on_order" in out.stdout
        result, out = run(ip, '%dispatch emit order.created {"id": 7} --source shop')
        assert result.success and "emitted order.created" in out.stdout
        [run_record] = wait_runs(client, "on_order", 1)
        assert run_record.input == {"id": 7} and run_record.event["source"] == "shop"
        client.create_event_source("nightly", type="schedule", config={"cron": "0 2 * * *"})
        result, out = run(ip, "%dispatch sources")
        assert "nightly  schedule" in out.stdout and "order.* -> on_order" in out.stdout
    finally:
        ip.magics_manager.registry["DispatchMagics"].close()
        server.stop()


@pytest.mark.parametrize(("line", "source"), [
    ("""%dispatch emit order.created '{"id": 7, "note": "two words"}' --source shop""", "shop"),
    ("""%dispatch emit order.created {"id": 7, "note": "two words"}""", "notebook"),
    ("""%dispatch emit order.created --source 'my shop' '{"id": 7, "note": "two words"}'""", "my shop"),
    ("""%dispatch emit order.created {"id": 7, "note": "two words"} --source=shop""", "shop"),
])
def test_emit_takes_the_data_bare_or_shell_quoted(ip, line, source):
    client = ip.magics_manager.registry["DispatchMagics"].client
    client.deploy(handle, name="on_order")
    run(ip, "%dispatch subscribe on_order --event-type order.*")
    result, out = run(ip, line)
    assert result.success, out.stderr
    [run_record] = wait_runs(client, "on_order", 1)
    assert run_record.input == {"id": 7, "note": "two words"} and run_record.event["source"] == source


def test_emit_keeps_a_source_option_inside_the_json(ip):
    client = ip.magics_manager.registry["DispatchMagics"].client
    client.deploy(handle, name="on_order")
    run(ip, "%dispatch subscribe on_order --event-type order.*")
    result, out = run(ip, """%dispatch emit order.created '{"note": " --source x"}'""")
    assert result.success, out.stderr
    [run_record] = wait_runs(client, "on_order", 1)
    assert run_record.input == {"note": " --source x"} and run_record.event["source"] == "notebook"
