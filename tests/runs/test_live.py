"""LiveRuns, the runs in flight: readers get snapshots, a run cancelled while QUEUED is never
claimed, a RUNNING one is marked as stopping, and removing a run wakes whoever waits for it."""

import logging
import threading

from dispatch_kernel.drivers.base import NEVER_STARTED
from dispatch_kernel.model import Run, RunFailure, RunStatus
from dispatch_kernel.runs.live import LiveRuns
from dispatch_kernel.runs.settle import Settled

TIMEOUT = 30.0  # generous: other test runs share the machine


def live_with(*runs: Run) -> LiveRuns:
    live = LiveRuns()
    live.add(runs)
    return live


def test_get_returns_a_snapshot_that_claim_and_settle_do_not_reach():
    run = Run(function="f")
    live = live_with(run)
    queued = live.get(run.id, run.org)
    assert queued is not run and queued == run
    live.claim([run])
    running = live.get(run.id, run.org)
    live.settle([(run, Settled(RunStatus.SUCCEEDED, 3, None, None, None, 1.0, False))])
    assert queued.status == RunStatus.QUEUED
    assert (running.status, running.output, running.finished) == (RunStatus.RUNNING, None, None)
    assert live.get(run.id, run.org).output == 3


def test_get_sees_only_runs_in_flight_of_the_asking_org():
    run = Run(function="f", org="acme")
    live = live_with(run)
    assert live.get(run.id, "acme") is not None
    assert live.get(run.id, "default") is None  # another org's run is not there for it
    assert live.get("no-such-run", "acme") is None
    assert run.id in live and "no-such-run" not in live


def test_current_is_a_snapshot_while_in_flight_and_the_run_itself_after():
    run = Run(function="f")
    live = live_with(run)
    seen = live.current(run)
    live.claim([run])
    assert seen is not run and seen.status == RunStatus.QUEUED
    live.remove([run])
    assert live.current(run) is run  # nothing live to copy: the record is final


def test_claim_marks_runs_running_and_skips_one_cancelled_while_queued():
    kept, cancelled = Run(function="f"), Run(function="f")
    live = live_with(kept, cancelled)
    assert live.cancel_queued(cancelled.id, cancelled.org) == (RunStatus.QUEUED, True)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.error == RunFailure("SystemError", NEVER_STARTED)
    assert cancelled.started is None and cancelled.finished is not None  # it never started
    assert live.claim([kept, cancelled]) == [kept]
    assert kept.status == RunStatus.RUNNING
    assert cancelled.status == RunStatus.CANCELLED  # it never starts


def test_cancelling_a_running_run_marks_it_stopping_until_its_outcome_asks_once():
    run = Run(function="f")
    live = live_with(run)
    live.claim([run])
    assert live.cancel_queued(run.id, run.org) == (RunStatus.RUNNING, True)
    assert run.status == RunStatus.RUNNING  # its driver has to stop it: nothing changes yet
    assert live.was_stopped(run.id) is True
    assert live.was_stopped(run.id) is False  # asked once per outcome

    live.cancel_queued(run.id, run.org)
    live.stop_failed(run.id)  # the driver could not stop it: it runs to its end
    assert live.was_stopped(run.id) is False


def test_cancel_leaves_runs_of_other_orgs_and_unknown_runs_alone():
    run = Run(function="f", org="acme")
    live = live_with(run)
    assert live.cancel_queued(run.id, "default") == (None, False)
    assert live.cancel_queued("no-such-run", "acme") == (None, False)
    assert run.status == RunStatus.QUEUED


def test_remove_sets_the_finished_event_and_forgets_the_run():
    run, other = Run(function="f"), Run(function="f")
    live = live_with(run, other)
    finished = live.finished_event(run.id)
    assert finished is live.finished_event(run.id)  # one event per run, however many wait
    woken = threading.Event()
    waiter = threading.Thread(target=lambda: finished.wait(TIMEOUT) and woken.set(), daemon=True)
    waiter.start()
    live.remove([other])
    assert not finished.is_set()
    live.remove([run])
    waiter.join(TIMEOUT)
    assert woken.is_set()
    assert run.id not in live
    assert live.finished_event(run.id) is None  # nothing left to wait for
    assert live.finished_event("no-such-run") is None


def test_watchers_get_snapshots_and_a_failing_one_is_logged_without_stopping_the_others(caplog):
    run = Run(function="f")
    live = live_with(run)
    first: list[Run] = []
    last: list[Run] = []

    def failing(seen: Run) -> None:
        raise ValueError("a broken widget")

    assert not live.watched
    live.watch(first.append)
    stop_failing = live.watch(failing)
    stop_last = live.watch(last.append)
    assert live.watched
    with caplog.at_level(logging.ERROR, logger="dispatch_kernel.runs.live"):
        live.announce([run])
    assert "a run watcher failed" in caplog.text
    assert len(first) == len(last) == 1
    assert first[0] is not run and first[0] == run
    live.claim([run])
    assert first[0].status == RunStatus.QUEUED  # what a watcher holds is not changed later

    stop_failing()
    stop_last()
    caplog.clear()
    live.announce([run])
    assert [seen.status for seen in first] == [RunStatus.QUEUED, RunStatus.RUNNING]
    assert len(last) == 1
    assert "a run watcher failed" not in caplog.text


def test_readers_see_a_settled_run_whole_or_not_at_all():
    run = Run(function="f")
    live = live_with(run)
    live.claim([run])
    torn: list[Run] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen = live.get(run.id, run.org)
            if seen is None:
                return
            if seen.status == RunStatus.SUCCEEDED and (seen.output != 42 or seen.finished is None):
                torn.append(seen)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    live.settle([(run, Settled(RunStatus.SUCCEEDED, 42, None, None, None, 2.0, False))])
    live.remove([run])
    reader.join(TIMEOUT)
    stop.set()
    assert not reader.is_alive()
    assert torn == []
