"""From a driver's Outcome to a run's final state: status, output or error, logs and times.

Secret values are masked in logs and error messages here, before anything is recorded. The
output is a pickle from a worker of an embedded core (the caller's own code, in the caller's own
process) or JSON text from the worker of an isolated core (a server), which never unpickles what
a function returned.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from typing import Any, Callable, NamedTuple

from ..drivers.base import NEVER_STARTED
from ..hosts import HostLease
from ..model import ErrorType, RunFailure, RunStatus
from ..runtime.protocol import Outcome
from ..secrets import redact
from ..store.base import EntityStore

log = logging.getLogger(__name__)

Validate = Callable[[Any], "str | None"]

STOPPED = "the run was cancelled while it ran: its worker was stopped"


class Settled(NamedTuple):
    """The final state of a run, given to it all at once (LiveRuns.settle)."""

    status: RunStatus
    output: Any
    error: RunFailure | None
    logs: dict[str, str] | None  # None: as the run has them
    started: float | None  # None: as the run has it, else when it finished
    finished: float
    cold_start: bool


def final_state(outcome: Outcome, hidden: list[str], json_output: bool, stopped: bool,
                validate_out: Validate | None) -> Settled:
    """How `outcome` finishes its run. `stopped`: its stop was asked of the driver, so a
    SystemError is the driver's doing (CANCELLED), not the function's."""
    stdout, stderr = outcome.stdout, outcome.stderr
    if hidden:
        stdout, stderr = redact(stdout, hidden), redact(stderr, hidden)
    logs = {"stdout": stdout, "stderr": stderr}
    times = (outcome.started, outcome.finished, outcome.cold_start)
    error = outcome.error
    if stopped and error is not None and error.type == ErrorType.SYSTEM.value:
        message = NEVER_STARTED if error.message == NEVER_STARTED else STOPPED
        return Settled(RunStatus.CANCELLED, None, RunFailure(ErrorType.SYSTEM.value, message), logs, *times)
    if error is not None:
        failure = RunFailure(error.type, redact(error.message, hidden), redact(error.stacktrace, hidden))
        return Settled(RunStatus.FAILED, None, failure, logs, *times)
    try:
        value = json.loads(outcome.output) if json_output else pickle.loads(outcome.output)
    except Exception as exc:
        failure = RunFailure(ErrorType.FUNCTION.value, f"the output could not be loaded by the caller: {exc}")
        return Settled(RunStatus.FAILED, None, failure, logs, *times)
    problem = validate_out(value) if validate_out is not None else None
    if problem is not None:
        return Settled(RunStatus.FAILED, None, RunFailure(ErrorType.FUNCTION.value, problem), logs, *times)
    # tuple.__new__: a NamedTuple's own __new__ is a Python function, and this is once per run
    return tuple.__new__(Settled, (RunStatus.SUCCEEDED, value, None, logs, *times))


def failed(message: str) -> Settled:
    """A run the platform failed now (a SystemError), before or instead of its outcome."""
    return Settled(RunStatus.FAILED, None, RunFailure(ErrorType.SYSTEM.value, message), None, None,
                   time.time(), False)


def settle_interrupted(store: EntityStore, lease: HostLease) -> int:
    """Fail the runs that processes which have since died left QUEUED or RUNNING (not this
    process's, nor a live one's); how many."""
    settled = 0
    for host in store.unsettled_hosts():
        if host == lease.id or lease.is_alive(host):
            continue
        settled += store.fail_unsettled(
            host, "the run was interrupted: the process running it ended before it finished")
        lease.forget(host)
    if settled:
        log.warning("failed %d run(s) interrupted by a process that ended", settled)
    return settled


__all__ = ["STOPPED", "Settled", "failed", "final_state", "settle_interrupted"]
