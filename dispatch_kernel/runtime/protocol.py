"""The messages between the host and a worker.

host -> worker: ("load", payload, {name, convention, memory, origins, sources})  once, first
                ("run", [Job, ...])                            any number of times
worker -> host: ("done", [Outcome, ...])                       results in job order, in batches
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Job(NamedTuple):
    """One run for a worker: the call's arguments and, for handle(ctx, payload), the context."""

    run_id: str
    args: tuple
    kwargs: dict[str, Any]
    context: dict[str, Any] | None  # secrets, event, http, timeout, function


class Failure(NamedTuple):
    """A run's error as the worker saw it."""

    type: str  # "InputError" | "FunctionError" | "SystemError"
    message: str
    stacktrace: str = ""


class Outcome(NamedTuple):
    """What became of one job."""

    run_id: str
    output: bytes | None  # the pickled return value when the run succeeded
    error: Failure | None
    stdout: str
    stderr: str
    started: float  # time.time()
    finished: float
    cold_start: bool  # set by the host: the worker was started for this run
