"""Runs: the one submit path every run takes (manager.py), the calls it carries (calls.py), the
coalescer that batches them per function (coalesce.py), the runs in flight (live.py) and how an
outcome becomes a run's final state (settle.py)."""

from .manager import RunManager

__all__ = ["RunManager"]
