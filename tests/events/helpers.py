"""Waiting for runs that events start (bounded: every wait has a deadline)."""

from __future__ import annotations

import asyncio
import time

from dispatch_kernel.model import RunStatus


def handle(ctx, payload):
    return {"payload": payload, "event": ctx.event}


def wait_runs(core, function: str, count: int, timeout: float = 30.0, *, finished: bool = True,
              settle: float = 0.0):
    """The runs of `function` once there are at least `count` (finished ones, by default);
    with `settle`, wait that much longer and return what is there (to catch extras)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = core.list_runs(function=function, limit=100_000)
        done = [r for r in runs if RunStatus(r.status).finished] if finished else runs
        if len(done) >= count:
            if settle:
                time.sleep(settle)
                runs = core.list_runs(function=function, limit=100_000)
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(done)} of {count} runs of {function} after {timeout}s")
        time.sleep(0.02)


def drop_stream(url: str, name: str) -> None:
    """Delete the JetStream stream `name` and its dead letters' stream on the NATS at `url`."""
    import nats

    async def drop() -> None:
        connection = await nats.connect(url)
        for each in (name, f"{name}_DEAD"):
            try:
                await connection.jetstream().delete_stream(each)
            except Exception:  # never made: nothing to drop
                pass
        await connection.close()

    asyncio.run(drop())
