"""The handles clients return: a deployed function to call, and a run to wait for.

A handle holds the client that made it and asks it for everything, so it works the same over
the in-process and the REST client.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Callable

from .model import Function, Run, RunFailure, RunStatus


class RunHandle:
    """A run in progress: its id and status now, its output once it has finished."""

    def __init__(self, client: Any, run: Run) -> None:
        self._client = client
        self._run = run

    @property
    def id(self) -> str:
        """The run's id."""
        return self._run.id

    @property
    def record(self) -> Run:
        """The run record as last seen."""
        if not RunStatus(self._run.status).finished:
            self._run = self._client.get_run(self._run.id)
        return self._run

    @property
    def status(self) -> RunStatus:
        """QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED."""
        return RunStatus(self.record.status)

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the run has finished; returns the run record."""
        if not RunStatus(self._run.status).finished:
            self._run = self._client.wait_run(self._run.id, timeout)
        return self._run

    def result(self, timeout: float | None = None) -> Any:
        """Wait, then return the output or raise the run's RunError."""
        return self.wait(timeout).result()

    def cancel(self) -> Run:
        """Stop the run (queued: it never starts; running: its worker is ended); returns the
        CANCELLED record. ConflictError if it has finished or cannot be stopped."""
        self._run = self._client.cancel_run(self._run.id)
        return self._run

    @property
    def output(self) -> Any:
        """The output (waits for the run to finish; None if it failed)."""
        return self.wait().output

    @property
    def error(self) -> RunFailure | None:
        """The error (waits for the run to finish; None if it succeeded)."""
        return self.wait().error

    @property
    def logs(self) -> dict[str, str]:
        """stdout and stderr (waits for the run to finish)."""
        return self.wait().logs

    def __repr__(self) -> str:
        return f"<RunHandle {self.id} {self._run.function} {RunStatus(self._run.status).value}>"


class FunctionHandle:
    """A deployed function: call it to run it remotely, `.local()` to run the original here."""

    def __init__(self, client: Any, function: Function, original: Callable[..., Any] | None = None) -> None:
        self._client = client
        self.function = function
        self._original = original

    @property
    def name(self) -> str:
        """The function's name."""
        return self.function.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A blocking run: the output, or the run's RunError."""
        return self._client.call(self.name, *args, **kwargs)

    def spawn(self, *args: Any, driver: str | None = None, **kwargs: Any) -> RunHandle:
        """A non-blocking run; `driver` pins it to one of the function's drivers."""
        return self._client.spawn(self.name, *args, driver=driver, **kwargs)

    def map(self, items: Iterable[Any], *, return_exceptions: bool = False) -> Iterator[Any]:
        """Outputs of one run per item, in order (tuples are positional arguments)."""
        return self._client.map(self.name, items, return_exceptions=return_exceptions)

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Call the original Python function in this process."""
        if self._original is None:
            raise TypeError(f"{self.name} was not deployed from this process: no local original")
        return self._original(*args, **kwargs)

    def runs(self, *, status: str | None = None, limit: int = 100) -> list[Run]:
        """This function's runs, newest first."""
        return self._client.list_runs(function=self.name, status=status, limit=limit)

    def refresh(self) -> Function:
        """Re-read the function record."""
        self.function = self._client.get_function(self.name)
        return self.function

    def delete(self) -> None:
        """Remove the function."""
        self._client.delete_function(self.name)

    def __repr__(self) -> str:
        return f"<FunctionHandle {self.name} {self.function.status} driver={self.function.driver}>"


__all__ = ["FunctionHandle", "RunHandle"]
