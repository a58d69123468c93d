"""Benchmarks of dispatch-kernel, each printed beside a peer baseline measured in the same run.

A figure alone says little on a noisy machine; the same figure divided by what a plain Python
mechanism achieves in the same process, minutes apart, says how much the framework costs.

    python -m bench                 # every benchmark
    python -m bench core            # every benchmark of bench/core.py
    python -m bench roundtrip       # one benchmark
    python -m bench --quick         # fewer iterations

This module holds what every benchmark module shares: the Result row and the table.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Result:
    """One printed row: a figure, the baseline it is compared with, and the goal it aims at."""

    bench: str
    metric: str  # what the figure is, with its unit ("p50 µs", "runs/s")
    figure: float
    baseline_name: str
    baseline: float
    goal: str = "-"
    met: bool | None = None  # None: no goal for this row
    note: str = ""  # printed under the table

    @property
    def ratio(self) -> float:
        """figure / baseline (below 1 is faster for a latency, above 1 for a rate)."""
        return self.figure / self.baseline if self.baseline else float("inf")


def p50(samples: Sequence[float]) -> float:
    """The median."""
    return statistics.median(samples)


def p99(samples: Sequence[float]) -> float:
    """The 99th percentile ("inclusive": stays within the samples for small counts)."""
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def number(value: float) -> str:
    """A figure with as many digits as a noisy measurement deserves."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(results: Sequence[Result]) -> str:
    """The compact table every run prints, notes below it."""
    header = ("benchmark", "metric", "figure", "baseline", "ratio", "goal", "met", "baseline is")
    rows = [
        (r.bench, r.metric, number(r.figure), number(r.baseline), f"{r.ratio:.2f}x", r.goal,
         "-" if r.met is None else ("yes" if r.met else "NO"), r.baseline_name)
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {2, 3, 4}  # right-aligned so digits line up

    def line(row: Sequence[str]) -> str:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    notes = [f"  {r.bench}: {r.note}" for r in results if r.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


__all__ = ["Result", "number", "p50", "p99", "render"]
