"""The supervisor restarts a failing task with growing delays and stops it for good when asked."""

from __future__ import annotations

import asyncio
import time

from dispatch_kernel.events.supervisor import Supervisor


def test_a_failing_task_is_restarted_with_backoff_then_stopped():
    supervisor = Supervisor(backoff_base=0.05, backoff_max=0.2)
    starts: list[float] = []
    statuses: list[tuple[str, str]] = []

    async def flaky() -> None:
        starts.append(time.monotonic())
        if len(starts) < 4:
            raise ConnectionError("dropped")
        await asyncio.Event().wait()  # healthy from the fourth start on

    try:
        supervisor.start("flaky", flaky, lambda name, status, reason: statuses.append((status, reason)))
        deadline = time.monotonic() + 5
        while len(starts) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.18  # 0.05, 0.1, 0.2
        assert supervisor.restarts["flaky"] == 3
        assert ("ERROR", "ConnectionError: dropped; restarting in 0.05s") in statuses
        time.sleep(0.05)
        assert statuses[-1] == ("RUNNING", "")
        supervisor.stop("flaky")
        assert statuses[-1] == ("STOPPED", "")
        assert supervisor.names() == []
    finally:
        supervisor.close()
    assert not supervisor._thread.is_alive()
