"""`python -m bench [--quick] [NAME ...]`: run benchmarks and print one table.

A NAME is a module of bench/ ("core": all its benchmarks) or one benchmark ("roundtrip");
none runs everything. A benchmark that crashes is shown as an error and makes the exit status
1; an unmet goal does not (it is a figure to read, not a test to pass).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable

from . import Result, core, drivers, events, gateway, identity, images, notebook, render, server, store

MODULES = {"core": core.BENCHMARKS, "notebook": notebook.BENCHMARKS, "server": server.BENCHMARKS,
           "images": images.BENCHMARKS, "events": events.BENCHMARKS, "gateway": gateway.BENCHMARKS,
           "drivers": drivers.BENCHMARKS, "store": store.BENCHMARKS, "identity": identity.BENCHMARKS}
# Far above any benchmark's own run time: only a hang reaches it, and then we would rather
# see every thread's stack and exit than sit until an outer timeout kills us silently.
_HANG_BUDGET = 300.0

Benchmark = Callable[[bool], list[Result]]


def select(names: list[str]) -> dict[str, Benchmark]:
    """Benchmarks named by module or by benchmark, in order and once each; all for none."""
    everything = {name: bench for module in MODULES.values() for name, bench in module.items()}
    chosen: dict[str, Benchmark] = {}
    for name in names or list(MODULES):
        if name in MODULES:
            chosen.update(MODULES[name])
        elif name in everything:
            chosen[name] = everything[name]
        else:
            choices = ", ".join([*MODULES, *everything])
            raise ValueError(f"no benchmark or module {name!r} (choose from {choices})")
    return chosen


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, print the table; 1 if any benchmark crashed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="module (" + ", ".join(MODULES) + ") or benchmark "
                        f"({', '.join(b for m in MODULES.values() for b in m)}); all when none")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args(argv)
    try:
        chosen = select(args.names)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2, like any other usage error
    sys.stdout.reconfigure(errors="replace")  # "µs" must not crash a non-UTF-8 terminal

    print(f"dispatch-kernel benchmarks: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{'quick' if args.quick else 'full'} run\nratio = figure / baseline: below 1 is faster for a "
          "time, above 1 for a rate", flush=True)
    results: list[Result] = []
    crashed = []
    started = time.perf_counter()
    for name, bench in chosen.items():
        print(f"  {name} ...", end="", flush=True)
        t0 = time.perf_counter()
        faulthandler.dump_traceback_later(_HANG_BUDGET, exit=True)
        try:
            results.extend(bench(args.quick))
            print(f" {time.perf_counter() - t0:.1f}s", flush=True)
        except Exception:
            print(" crashed", flush=True)
            traceback.print_exc()
            crashed.append(name)
        finally:
            faulthandler.cancel_dump_traceback_later()
    print()
    print(render(results))
    if crashed:
        print(f"\ncrashed: {', '.join(crashed)}")
    print(f"\n{len(results)} figures in {time.perf_counter() - started:.1f}s")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
