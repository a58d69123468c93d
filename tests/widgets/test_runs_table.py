"""RunsTable: the newest runs, live, throttled, with a picker that opens a RunInspector."""

import threading
import time

import pytest

import dispatch_kernel as dk
from dispatch_kernel.widgets import RunInspector, RunsTable

from .helpers import add, divide, eventually, nap

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def table(client):
    the_table = RunsTable(client)
    yield the_table
    the_table.close()


def statuses(table: RunsTable) -> dict[str, str]:
    return {run.id: dk.RunStatus(run.status).value for run in table.runs}


def test_shows_new_runs_with_their_final_status_after_a_flush(client, table):
    assert table.runs == [] and "no runs yet" in table.table.value
    adder, divider = client.deploy(add), client.deploy(divide)

    ok = adder.spawn(1, 2).wait(timeout=30)
    failed = divider.spawn(1, 0).wait(timeout=30)
    table.flush()

    assert statuses(table) == {ok.id: "SUCCEEDED", failed.id: "FAILED"}
    assert [run.id for run in table.runs] == [failed.id, ok.id]  # newest first
    html = table.table.value
    assert ok.id in html and failed.id in html
    assert "SUCCEEDED" in html and "FAILED" in html and "FunctionError" in html
    assert html.index(failed.id) < html.index(ok.id)
    assert "2 run(s): 1 failed, 1 succeeded" in table.title.value
    assert [value for _, value in table.selector.options] == [None, failed.id, ok.id]


def test_existing_runs_are_listed_and_a_function_filter_applies(client):
    adder, divider = client.deploy(add), client.deploy(divide)
    earlier = adder.spawn(1, 1).wait(timeout=30)
    divider.spawn(4, 2).wait(timeout=30)

    table = RunsTable(client, function="add")
    try:
        assert [run.id for run in table.runs] == [earlier.id]
        later = adder.spawn(2, 2).wait(timeout=30)
        divider.spawn(9, 3).wait(timeout=30)
        table.flush()
        assert [run.id for run in table.runs] == [later.id, earlier.id]
        assert "2 run(s) of add" in table.title.value
    finally:
        table.close()


def test_a_status_filter_shows_runs_as_they_reach_it(client):
    fn = client.deploy(divide)
    earlier = fn.spawn(1, 0).wait(timeout=30)
    fn.spawn(4, 2).wait(timeout=30)

    table = RunsTable(client, status="failed")
    try:
        assert [run.id for run in table.runs] == [earlier.id]
        later = fn.spawn(2, 0).wait(timeout=30)
        fn.spawn(9, 3).wait(timeout=30)
        table.flush()
        assert [run.id for run in table.runs] == [later.id, earlier.id]
        assert table.title.value == "<b>2 failed run(s)</b>"
    finally:
        table.close()
    with pytest.raises(ValueError, match="unknown run status 'done'"):
        RunsTable(client, status="done")


def test_runs_progress_live_without_an_explicit_flush(client, table):
    fn = client.deploy(nap)
    shown: list[str] = []
    table.table.observe(lambda change: shown.append(change["new"]), names="value")

    run = fn.spawn(2.0)  # long enough that a loaded machine still renders it while it runs
    # Wait on what is rendered: the run records themselves change before the next render.
    assert eventually(lambda: bool(shown) and run.id in shown[-1] and "SUCCEEDED" in shown[-1])

    assert any(run.id in html and "RUNNING" in html for html in shown)  # seen while it ran


def test_only_the_newest_runs_up_to_the_limit_are_kept(client):
    fn = client.deploy(add)
    table = RunsTable(client, limit=3)
    try:
        runs = [fn.spawn(i, i).wait(timeout=30) for i in range(6)]
        table.flush()
        assert [run.id for run in table.runs] == [run.id for run in reversed(runs[-3:])]
        assert "3 newest run(s)" in table.title.value
    finally:
        table.close()


def test_picking_a_run_opens_its_inspector_and_survives_new_runs(client, table):
    fn = client.deploy(divide)
    failed = fn.spawn(1, 0).wait(timeout=30)
    table.flush()

    table.selector.value = failed.id  # what the frontend does when the user picks it

    assert isinstance(table.inspector, RunInspector)
    assert table.inspector_area.children == (table.inspector,)
    assert table.inspector.run.id == failed.id
    assert "ZeroDivisionError" in table.inspector.error.value

    inspector = table.inspector
    fn.spawn(6, 3).wait(timeout=30)
    table.flush()  # the options changed: the pick and its inspector stay
    assert table.selector.value == failed.id and table.inspector is inspector

    table.selector.value = None
    assert table.inspector is None and table.inspector_area.children == ()


def test_the_inspector_of_a_running_run_updates_when_it_finishes(client, table):
    fn = client.deploy(nap)
    handle = fn.spawn(0.5)
    table.flush()
    inspector = table.select(handle.id)
    assert "SUCCEEDED" not in inspector.header.value

    handle.wait(timeout=30)
    assert eventually(lambda: "SUCCEEDED" in inspector.header.value)
    assert ">0.5</pre>" in inspector.output.value


def test_a_burst_of_runs_renders_a_bounded_number_of_times_and_ends_on_the_latest(client, table):
    # 2,000 runs of 2 ms on two workers: a burst that lasts a few throttle intervals.
    fn = client.deploy(nap, name="tick", max_workers=2)
    changes = []
    stop_counting = client.watch_runs(changes.append)
    before = table.render_count

    started = time.monotonic()
    outputs = list(fn.map([0.002] * 2000))
    elapsed = time.monotonic() - started
    stop_counting()

    assert outputs == [0.002] * 2000
    assert len(changes) >= 3 * 2000  # queued, running, succeeded: each one a callback
    latest = client.list_runs(function="tick", limit=50)
    assert eventually(lambda: [run.id for run in table.runs] == [run.id for run in latest]
                      and set(statuses(table).values()) == {"SUCCEEDED"}, timeout=10)
    time.sleep(0.5)  # chunks finish out of order: let a trailing render of older runs happen
    renders = table.render_count - before
    # At most one render per throttle interval (0.25 s) while the burst lasts, plus the
    # first change (acted on at once) and the trailing one after the burst.
    assert 2 <= renders <= elapsed / 0.25 + 3, (renders, elapsed)
    assert table.flush() is False  # nothing was left behind
    assert latest[0].id in table.table.value and "50 newest run(s)" in table.title.value


def test_callbacks_stay_fast_while_a_render_is_slow(client, table):
    # A slow frontend must not slow the runs down: the callback only queues.
    fn = client.deploy(add)
    release = threading.Event()
    original = table._render

    def slow_render():
        release.wait(5)
        original()

    table._render = slow_render
    started = time.monotonic()
    assert list(fn.map((i, i) for i in range(200))) == [2 * i for i in range(200)]
    assert time.monotonic() - started < 4
    release.set()
    table._render = original
    assert eventually(lambda: len(table.runs) == 50 and set(statuses(table).values()) == {"SUCCEEDED"})


def test_close_unsubscribes_and_stops_the_render_thread(client):
    fn = client.deploy(add)
    table = RunsTable(client)
    fn.spawn(1, 1).wait(timeout=30)
    assert eventually(lambda: len(table.runs) == 1)
    assert table._throttle.running

    table.close()
    count = table.render_count
    fn.spawn(2, 2).wait(timeout=30)
    time.sleep(0.4)

    assert table.render_count == count and len(table.runs) == 1
    assert not table._throttle.running
    assert table.comm is None and table.table.comm is None


def test_the_display_bundle_reads_without_a_widget_frontend(client, table):
    fn = client.deploy(divide)
    ok = fn.spawn(6, 3).wait(timeout=30)
    failed = fn.spawn(1, 0).wait(timeout=30)
    table.flush()

    bundle = table._repr_mimebundle_()

    assert WIDGET_VIEW in bundle
    lines = bundle["text/plain"].splitlines()
    assert lines[0] == "2 run(s): 1 failed, 1 succeeded"
    assert lines[1].split() == ["status", "function", "started", "duration", "cold", "start", "error", "id"]
    assert lines[2].split()[0] == "FAILED" and failed.id in lines[2] and "FunctionError" in lines[2]
    assert lines[3].split()[0] == "SUCCEEDED" and ok.id in lines[3]
    html = bundle["text/html"]
    assert html.count("<tr>") == 3 and failed.id in html and "FunctionError" in html
