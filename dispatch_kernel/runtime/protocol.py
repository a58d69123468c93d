"""The messages between the host and a worker, and the one rule that maps a JSON input to a call.

host -> worker: ("load", payload, {name, convention, memory, origins, sources, code, filename})
                                                               once, first
                ("run", [Job, ...])                            any number of times
worker -> host: ("done", [Outcome, ...])                       results in job order, in batches

What a worker sends is read with `load_answer`, which rebuilds only the types below: a
function's own code runs in the worker and could write anything into its channel, and a full
unpickler would run whatever that is in the host.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, NamedTuple


class Job(NamedTuple):
    """One run for a worker: the call's arguments and, for handle(ctx, payload), the context."""

    run_id: str
    args: tuple
    kwargs: dict[str, Any]
    context: dict[str, Any] | None  # secrets, event, http, timeout, function
    json_output: bool = False  # answer with the output as JSON text, not a pickle


class Failure(NamedTuple):
    """A run's error as the worker saw it."""

    type: str  # "InputError" | "FunctionError" | "SystemError"
    message: str
    stacktrace: str = ""


class Outcome(NamedTuple):
    """What became of one job."""

    run_id: str
    output: bytes | None  # the return value when the run succeeded: a pickle, or JSON text
    error: Failure | None
    stdout: str
    stderr: str
    started: float  # time.time()
    finished: float
    cold_start: bool  # set by the host: the worker was started for this run


def arguments(convention: str, value: Any) -> tuple[tuple, dict[str, Any]]:
    """(args, kwargs) of a call from its JSON input: the payload of handle(ctx, payload) as it
    is; for a plain function an object with exactly "args" (an array) and "kwargs" (an object)
    is the Python call form that run records show, another object keyword arguments, an array
    positional ones, null no arguments, anything else the one argument."""
    if convention == "dispatch":
        return (value,), {}
    if isinstance(value, dict):
        if _looks_like_a_call(value):
            return tuple(value["args"]), dict(value["kwargs"])
        return (), value
    if isinstance(value, list):
        return tuple(value), {}
    if value is None:
        return (), {}
    return (value,), {}


def recorded_input(args: tuple, kwargs: dict[str, Any]) -> Any:
    """How a plain function's Python call is shown in its run record (the inverse of
    `arguments`): keyword arguments as an object, positional ones as an array, both as
    {"args", "kwargs"}."""
    if kwargs and (args or _looks_like_a_call(kwargs)):
        return {"args": list(args), "kwargs": kwargs}
    if kwargs:
        return kwargs
    return list(args)


def _looks_like_a_call(value: dict[str, Any]) -> bool:
    """Whether `arguments` would read this object as the {"args", "kwargs"} call form."""
    return (value.keys() == {"args", "kwargs"} and isinstance(value["args"], list)
            and isinstance(value["kwargs"], dict))


# What a worker's answers are made of: these two, plus the builtin containers and scalars that
# pickle writes with opcodes of its own (no global is looked up for them).
_ANSWER_TYPES = {(__name__, "Outcome"): Outcome, (__name__, "Failure"): Failure}


class _AnswerUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ANSWER_TYPES[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"a worker's answer may not hold {module}.{name}") from None


def load_answer(data: bytes | memoryview) -> Any:
    """Unpickle what a worker (or a fork server) sent, refusing every global but Outcome and
    Failure: nothing in it can make this process call anything."""
    return _AnswerUnpickler(io.BytesIO(data)).load()
