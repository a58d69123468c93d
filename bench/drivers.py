"""What choosing among a function's drivers costs per run (drivers/choice.py).

`driver_choice`: warm `fn(1)` of a function with a failover list (["local", "container"],
the container driver pointed at an engine that does not exist, so every run is chosen and goes
to local) beside the same warm `fn(1)` of a single-driver function, the two taking turns so
that load from elsewhere falls on both alike; and one `DriverChoice.pick()` on a two-driver
split against `random.random()`, the draw it cannot do without.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel.drivers.choice import DriverChoice, DriverEntry
from dispatch_kernel.settings import Settings

from . import Result, p50
from .core import inc

_US = 1e6
_BROKEN = {"container": {"docker_host": "unix:///nonexistent/dispatch-bench.sock"}}


def _turns(calls: list, rounds: int, per_round: int) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in calls]
    clock = time.perf_counter
    for _ in range(rounds):
        for index, call in enumerate(calls):
            for _ in range(per_round):
                start = clock()
                call()
                samples[index].append(clock() - start)
    return samples


def driver_choice(quick: bool = False) -> list[Result]:
    """Per-run cost of the split/failover choice: warm run p50 with and without it, and pick()."""
    rounds, per_round = (5, 60) if quick else (40, 250)
    home = Path(tempfile.mkdtemp(prefix="dk-bench-"))
    client = dk.connect(settings=Settings(home=home, plugin_options=_BROKEN))
    try:
        single = client.deploy(inc, name="single", min_workers=1, max_workers=1)
        several = client.deploy(inc, name="several", drivers=["container", "local"], min_workers=1, max_workers=1)
        if single(1) != 2 or several(1) != 2:
            raise RuntimeError("driver_choice: inc(1) did not return 2")
        for _ in range(200):  # warm both
            single(1), several(1)
        alone, chosen = _turns([lambda: single(1), lambda: several(1)], rounds, per_round)
        last = client.list_runs(function="several", limit=1)[0]
        if last.driver != "local":
            raise RuntimeError(f"driver_choice: a run went to {last.driver!r}, not local")
    finally:
        client.close()
        shutil.rmtree(home, ignore_errors=True)

    choice = DriverChoice("split", [DriverEntry("a", None, 0.9), DriverEntry("b", None, 0.1)])  # type: ignore[arg-type]
    count = 20000 if quick else 500000
    draw = random.random
    start = time.perf_counter()
    for _ in range(count):
        draw()
    baseline = (time.perf_counter() - start) / count
    pick = choice.pick
    start = time.perf_counter()
    for _ in range(count):
        pick()
    picked = (time.perf_counter() - start) / count

    mid, base = p50(chosen) * _US, p50(alone) * _US
    overhead = mid - base
    return [
        Result("driver_choice", "p50 µs, failover fn(1)", mid, "single-driver fn(1)", base,
               "overhead <= 5 µs", overhead <= 5,
               f"{rounds} rounds of {per_round} warm runs each, taking turns; overhead {overhead:+.2f} µs"),
        Result("driver_choice", "µs per split pick()", picked * _US, "random.random()", baseline * _US,
               "<= 5 µs", picked * _US <= 5, f"{count} picks of a 0.9/0.1 split"),
    ]


BENCHMARKS = {"driver_choice": driver_choice}
