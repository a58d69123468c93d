"""RunManager's one submit path, where it can go wrong: an outcome the core cannot read, a
store write that fails, runs queued behind a busy worker, every waiter told whatever happens."""

from __future__ import annotations

import time

import pytest

import dispatch_kernel as dk

TIMEOUT = 30.0


def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


class Unequal:
    """An output whose comparison raises: checking it against an enum schema fails."""

    def __eq__(self, other):
        raise RuntimeError("no comparing me")

    __hash__ = object.__hash__


def unequal():
    return Unequal()


def test_an_outcome_that_cannot_be_settled_fails_its_run_and_nobody_hangs(client):
    fn = client.deploy(unequal, schema_out={"enum": [1, 2]}, max_workers=1)
    with pytest.raises(dk.RunSystemError, match="its outcome could not be read"):
        fn()
    assert fn.spawn().wait(TIMEOUT).status == dk.RunStatus.FAILED
    assert [type(e).__name__ for e in fn.map([(), ()], return_exceptions=True)] == ["RunSystemError"] * 2
    assert all(run.status == dk.RunStatus.FAILED for run in fn.runs())
    assert client.dispatch.runs.live.all() == []  # nothing left in flight


def test_runs_spawned_behind_a_busy_worker_are_each_cancellable(client):
    fn = client.deploy(nap, max_workers=1)
    first = fn.spawn(1)
    deadline = time.monotonic() + TIMEOUT
    while client.get_run(first.id).status != dk.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    second, third = fn.spawn(2), fn.spawn(2)
    assert second.cancel().status == dk.RunStatus.CANCELLED  # not stuck in one batch with `third`
    assert client.get_run(third.id).status == dk.RunStatus.QUEUED  # shown RUNNING only once it runs
    assert third.cancel().status == dk.RunStatus.CANCELLED
    assert first.result(TIMEOUT) == 1


def test_a_run_whose_final_record_fails_is_still_seen_finished(client, monkeypatch):
    fn = client.deploy(nap, max_workers=1)
    assert fn(0) == 0
    store = client.dispatch.store
    real = store.finish_runs

    def refuse(runs):
        monkeypatch.setattr(store, "finish_runs", real)  # once
        raise OSError("no space left on device")

    monkeypatch.setattr(store, "finish_runs", refuse)
    run = fn.spawn(0)
    finished = client.wait_run(run.id, TIMEOUT)  # not RUNNING forever, as the store still says
    assert finished.status == dk.RunStatus.SUCCEEDED and finished.output == 0


def test_a_driver_that_answers_fewer_jobs_than_it_was_given_fails_the_rest(client, monkeypatch):
    fn = client.deploy(nap, max_workers=1)
    assert fn(0) == 0
    driver = client.dispatch.drivers.get("local")
    real = driver.execute
    monkeypatch.setattr(driver, "execute", lambda function, jobs, on_done=None: real(function, jobs[:1]))
    outputs = list(fn.map([0, 0, 0], return_exceptions=True))
    assert outputs[0] == 0
    assert all(isinstance(e, dk.RunSystemError) and "no outcome" in str(e) for e in outputs[1:])


def test_closing_the_core_tells_every_waiter(home):
    client = dk.connect(home=home)
    fn = client.deploy(nap, max_workers=1)
    running = fn.spawn(30)
    deadline = time.monotonic() + TIMEOUT
    while client.get_run(running.id).status != dk.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = client.dispatch.runs.submit("nap", [0], org="default")
    client.close()
    assert queued.done()
    try:
        run = queued.result(0)
    except dk.DispatchError:  # it never started: the core closed first
        return
    assert run.status == dk.RunStatus.FAILED  # or it started and was failed as the core closed


def test_an_interrupt_while_a_caller_runs_fails_the_run_and_frees_its_lane(client, monkeypatch):
    fn = client.deploy(nap, max_workers=1)
    assert fn(0) == 0
    driver = client.dispatch.drivers.get("local")
    real = driver.execute

    def interrupted(function, jobs, on_done=None):
        monkeypatch.setattr(driver, "execute", real)  # once
        raise KeyboardInterrupt  # the user pressed Interrupt while the run was on its way

    monkeypatch.setattr(driver, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fn(0)
    assert fn(0) == 0  # the lane was given back: not wedged behind the interrupted run
    interrupted_run = fn.runs()[1]
    assert interrupted_run.status == dk.RunStatus.FAILED
    assert interrupted_run.error.message == "the driver could not run it: KeyboardInterrupt"
    assert client.dispatch.runs.live.all() == []


def test_a_store_that_refuses_a_run_fails_that_call_alone(client, monkeypatch, caplog):
    fn = client.deploy(nap, max_workers=1)
    assert fn(0) == 0
    store = client.dispatch.store
    real = store.add_runs

    def refuse(runs, host):
        monkeypatch.setattr(store, "add_runs", real)  # once
        raise OSError("no space left on device")

    monkeypatch.setattr(store, "add_runs", refuse)
    with pytest.raises(OSError, match="no space left"):
        fn(0)
    assert "a run of nap failed" in caplog.text
    assert fn(0) == 0  # the next call finds its lane free
    assert client.dispatch.runs.live.all() == []
