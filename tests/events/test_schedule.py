"""The schedule source: a one-second period fires on time; downtime gives one catch-up fire."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

import dispatch_kernel as dk
from dispatch_kernel.events.sources.base import SourceContext
from dispatch_kernel.events.sources.schedule import ScheduleSource
from dispatch_kernel.entities import EventSource
from dispatch_kernel.model import InvalidRequestError, RunStatus
from dispatch_kernel.settings import Settings

from .helpers import handle, wait_runs


def test_a_one_second_period_fires_within_tolerance(home):
    with dk.connect(settings=Settings(home=home)) as core:
        core.deploy(handle, name="tick")
        core.subscribe("tick", event_type="schedule.tick")
        source = core.create_event_source("every-second", type="schedule", config={"period": "1s"})
        assert source.type == "schedule"
        runs = wait_runs(core, "tick", 3, timeout=10)
        ticks = sorted(r.input["scheduled"] for r in runs)
        stamps = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in ticks]
        for earlier, later in zip(stamps, stamps[1:]):
            assert later - earlier == pytest.approx(1.0, abs=0.01)
        lags = [run.queued - _stamp(run.input["scheduled"]) for run in runs]
        assert all(lag >= 0 for lag in lags)  # never early
        assert sorted(lags)[len(lags) // 2] < 0.25 and max(lags) < 1.0  # and on time
        assert core.get_event_source("every-second").status == "RUNNING"
        core.delete_event_source("every-second")
        count = len(core.list_runs(function="tick"))
        time.sleep(1.5)
        assert len(core.list_runs(function="tick")) == count  # deleted: stopped


def test_after_downtime_it_fires_once_for_the_missed_ticks(home):
    settings = Settings(home=home)
    with dk.connect(settings=settings) as core:
        core.deploy(handle, name="tick")
        core.subscribe("tick", event_type="schedule.tick")
        core.create_event_source("fast", type="schedule", config={"period": 0.5})
        wait_runs(core, "tick", 1, timeout=10)
    closed = time.time()
    time.sleep(2.6)  # about five ticks missed while no process runs the source
    with dk.connect(settings=settings) as core:
        deadline = time.monotonic() + 10
        while True:
            runs = core.list_runs(function="tick")
            catch_up = [r for r in runs if r.status == RunStatus.SUCCEEDED and r.input["missed"] >= 3]
            if catch_up:
                break
            assert time.monotonic() < deadline, [r.input for r in runs]
            time.sleep(0.05)
        [catch_up] = catch_up
        fired_at = _stamp(catch_up.input["scheduled"])
        # one fire stood for all the ticks missed while down: none of them fired on its own
        down = [r for r in runs if closed < _stamp(r.input["scheduled"]) <= fired_at]
        assert down == [catch_up]
        assert catch_up.input["missed"] <= 6


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _driver(config, created):
    entity = EventSource(name="s", type="schedule", config=ScheduleSource.check_config(config, []),
                         created=created)
    return ScheduleSource(SourceContext(entity, {}, lambda e: None, None))


def test_cron_ticks_follow_the_time_zone_across_daylight_saving():
    berlin = _driver({"cron": "0 2 * * *", "timezone": "Europe/Berlin"}, 0)
    # 2026-03-28 12:00 UTC: the next 02:00 Berlin is on the 29th, after the switch to CEST
    after = datetime(2026, 3, 28, 12, tzinfo=timezone.utc).timestamp()
    tick = berlin.next_tick(after)
    assert datetime.fromtimestamp(tick, timezone.utc).hour in (0, 1)  # 02:00 CEST/03:00 is 00/01 UTC
    winter = berlin.next_tick(datetime(2026, 1, 10, 12, tzinfo=timezone.utc).timestamp())
    assert datetime.fromtimestamp(winter, timezone.utc).hour == 1  # 02:00 CET
    latest, count = berlin.missed(after, after + 10 * 86400)
    assert count == 10 and latest == berlin.next_tick(after + 9 * 86400)


def test_bad_schedules_are_refused(home):
    with dk.connect(settings=Settings(home=home)) as core:
        for config in ({}, {"cron": "not cron"}, {"period": "-1s"}, {"cron": "* * * * *", "period": 1},
                       {"period": "1s", "timezone": "Mars/Olympus"}):
            with pytest.raises(InvalidRequestError):
                core.create_event_source("bad", type="schedule", config=config)
        with pytest.raises(InvalidRequestError):
            core.create_event_source("bad", type="nonesuch")
        assert core.list_event_sources() == []
