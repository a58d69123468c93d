"""A Call: one run asked for, with the Python arguments it is made from (never stored).

Every entry point makes Calls, from a JSON input or from Python arguments, and hands them to the
one submit path (runs/manager.py). A Call may be made before its function is resolved (a REST
request waiting on an event loop must not touch the store): it then carries its input until the
batch that runs it builds the run.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..model import Function, InvalidRequestError, Run
from ..runtime.protocol import arguments, recorded_input

if TYPE_CHECKING:
    from concurrent.futures import Future


Waiter = Callable[["Call"], None]
"""Told once, on the thread that finished it, that a call has finished or failed to start."""


class Call:
    """A run together with the arguments it is made from, and who waits for it."""

    __slots__ = ("run", "args", "kwargs", "input", "python", "event", "http", "run_id", "admitted",
                 "waiter", "exception", "alone", "tags", "driver")

    def __init__(self, *, input: Any = None, python: tuple[tuple, dict[str, Any]] | None = None,
                 event: dict[str, Any] | None = None, http: dict[str, Any] | None = None,
                 run_id: str | None = None, waiter: Waiter | None = None,
                 tags: dict[str, str] | None = None, driver: str | None = None) -> None:
        self.run: Run | None = None  # made by build(), once the function is known
        self.args: tuple = ()
        self.kwargs: dict[str, Any] = {}
        self.input = input
        self.python = python  # (args, kwargs) of a Python call; else `input` is JSON
        self.event = event
        self.http = http
        self.run_id = run_id  # an event delivery's: the same on every redelivery
        self.admitted = False  # recorded in the store (QUEUED, or FAILED for a refused input)
        self.waiter = waiter
        self.exception: BaseException | None = None  # why it could not be run at all
        # A run that goes to a worker in a batch of its own: it can be stopped on its own and is
        # RUNNING only once it runs (spawn, and a waited call). Others may share a batch.
        self.alone = False
        self.tags = tags  # the run's tags, e.g. which dead letter it replays
        self.driver = driver  # the one of the function's drivers this run is pinned to, if any

    def build(self, function: Function) -> Call:
        """Make the run and the call's arguments for `function`; InvalidRequestError when a
        Python call does not fit its calling convention."""
        if self.python is None:
            self.args, self.kwargs = arguments(function.convention, self.input)
            shown = self.input
        else:
            args, kwargs = self.python
            # Copied only when they are not a tuple and a dict already (a JSON list, say).
            self.args = args if type(args) is tuple else tuple(args)
            self.kwargs = kwargs if type(kwargs) is dict else dict(kwargs)
            if function.convention == "dispatch":
                if len(self.args) != 1 or self.kwargs:
                    raise InvalidRequestError(
                        f"{function.name} is a handle(ctx, payload) function: call it with one payload")
                shown = self.args[0]
            else:  # positional arguments only, the usual call, without a call of recorded_input
                shown = recorded_input(self.args, self.kwargs) if self.kwargs else list(self.args)
        pinned = self.driver
        if pinned and pinned != function.driver and pinned not in function.drivers:
            raise InvalidRequestError(f"{pinned!r} is not one of the drivers of {function.name} "
                                      f"({', '.join(function.drivers or [function.driver])})")
        run = Run(function=function.name, org=function.org, function_revision=function.revision,
                  input=shown, event=self.event, http=self.http,
                  driver=pinned or ("" if function.drivers else function.driver))
        if self.run_id is not None:
            run.id = self.run_id
        if self.tags:
            run.tags = dict(self.tags)
        self.run = run
        return self

    def done(self) -> None:
        """Tell the waiter (once): the run has finished, or `exception` says why it did not start."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter(self)


def json_call(function: Function, input: Any, *, event: dict[str, Any] | None = None,
              http: dict[str, Any] | None = None, run_id: str | None = None,
              waiter: Waiter | None = None, tags: dict[str, str] | None = None,
              driver: str | None = None) -> Call:
    """A call from a JSON input (protocol.arguments maps it to arguments)."""
    return Call(input=input, event=event, http=http, run_id=run_id, waiter=waiter, tags=tags,
                driver=driver).build(function)


def python_call(function: Function, args: tuple, kwargs: dict[str, Any], *, waiter: Waiter | None = None,
                driver: str | None = None) -> Call:
    """A call with Python arguments (a handle(ctx, payload) function takes exactly one);
    `driver` pins the run to one of the function's drivers."""
    return Call(python=(args, kwargs), waiter=waiter, driver=driver).build(function)


class Chunk:
    """Calls of map() that are waited for together: `finished` is set once all are done."""

    __slots__ = ("calls", "size", "finished", "_done")

    def __init__(self, size: int) -> None:
        self.calls: list[Call] = []
        self.size = size
        self.finished = threading.Event()
        self._done = itertools.count(1)  # next() on a count is atomic: no lock per run

    def one_done(self, _call: Call) -> None:
        if next(self._done) == self.size:
            self.finished.set()


def resolve_future(future: Future, call: Call) -> None:
    """A waiter for submit(): the Future takes the finished run, or why it could not run."""
    if future.done():
        return
    if call.exception is not None:
        future.set_exception(call.exception)
    else:
        future.set_result(call.run)


__all__ = ["Call", "Chunk", "Waiter", "json_call", "python_call", "resolve_future"]
