"""The Client every face speaks, its in-process implementation, and the handles it returns.

`Client` is a Protocol: LocalClient drives a Dispatch core in this process; the REST client
implements the same methods over HTTP, so code written against one runs against the other.
This module imports nothing heavy: the core is built only when `connect()` is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .model import Function, Run, RunError, RunStatus, Secret

if TYPE_CHECKING:
    from .core import Dispatch
    from .settings import Settings


@runtime_checkable
class Client(Protocol):
    """What every face can do: deploy and manage functions, run them, manage secrets."""

    def deploy(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> FunctionHandle:
        """Package and deploy `fn`; options as Dispatch.deploy (timeout, secrets, schema_in, ...)."""

    def function(self, name: str) -> FunctionHandle:
        """A handle on an already deployed function."""

    def get_function(self, name: str) -> Function:
        """The function record."""

    def list_functions(self) -> list[Function]:
        """Every function, by name."""

    def delete_function(self, name: str) -> None:
        """Remove a function (its runs stay)."""

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run with Python arguments, wait, return the output; RunError on failure."""

    def spawn(self, name: str, *args: Any, **kwargs: Any) -> RunHandle:
        """Start a run with Python arguments without waiting."""

    def map(self, name: str, items: Iterable[Any], *, return_exceptions: bool = False) -> Iterator[Any]:
        """Outputs of one run per item, in order."""

    def invoke(self, name: str, input: Any = None, *, wait: bool = True) -> Run:
        """Run with a JSON input; returns the run record (finished when `wait`)."""

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """The run once finished."""

    def get_run(self, run_id: str) -> Run:
        """One run record."""

    def list_runs(self, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        """Run records, newest first."""

    def watch_runs(self, callback: Callable[[Run], None]) -> Callable[[], None]:
        """Call `callback(run)` on every run status change; returns a function that stops it."""

    def create_secret(self, name: str, values: dict[str, str]) -> Secret:
        """Store a secret, encrypted."""

    def get_secret(self, name: str) -> Secret:
        """A secret with its values."""

    def list_secrets(self) -> list[Secret]:
        """Secrets without their values."""

    def delete_secret(self, name: str) -> None:
        """Remove a secret."""

    def close(self) -> None:
        """Release what the client holds."""


class RunHandle:
    """A run in progress: its id and status now, its output once it has finished."""

    def __init__(self, client: Client, run: Run) -> None:
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
        run = self.wait(timeout)
        if run.status == RunStatus.SUCCEEDED:
            return run.output
        raise RunError.for_run(run)

    @property
    def output(self) -> Any:
        """The output (waits for the run to finish; None if it failed)."""
        return self.wait().output

    @property
    def error(self):
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

    def __init__(self, client: Client, function: Function, original: Callable[..., Any] | None = None) -> None:
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

    def spawn(self, *args: Any, **kwargs: Any) -> RunHandle:
        """A non-blocking run."""
        return self._client.spawn(self.name, *args, **kwargs)

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


class LocalClient:
    """The Client over a Dispatch core in this process (the embedded default)."""

    def __init__(self, dispatch: Dispatch, org: str | None = None) -> None:
        self.dispatch = dispatch
        self.org = org

    def deploy(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> FunctionHandle:
        function = self.dispatch.deploy(fn, name, org=self.org, **options)
        return FunctionHandle(self, function, fn if callable(fn) else None)

    def function(self, name: str) -> FunctionHandle:
        return FunctionHandle(self, self.get_function(name))

    def get_function(self, name: str) -> Function:
        return self.dispatch.get_function(name, self.org)

    def list_functions(self) -> list[Function]:
        return self.dispatch.list_functions(self.org)

    def delete_function(self, name: str) -> None:
        self.dispatch.delete_function(name, self.org)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.dispatch.call(name, args, kwargs, self.org)

    def spawn(self, name: str, *args: Any, **kwargs: Any) -> RunHandle:
        return RunHandle(self, self.dispatch.spawn(name, args, kwargs, self.org))

    def map(self, name: str, items: Iterable[Any], *, return_exceptions: bool = False) -> Iterator[Any]:
        return self.dispatch.map(name, items, self.org, return_exceptions)

    def invoke(self, name: str, input: Any = None, *, wait: bool = True) -> Run:
        return self.dispatch.invoke(name, input, wait=wait, org=self.org)

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        return self.dispatch.wait_run(run_id, timeout, self.org)

    def get_run(self, run_id: str) -> Run:
        return self.dispatch.get_run(run_id, self.org)

    def list_runs(self, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        return self.dispatch.list_runs(self.org, function=function, status=status, since=since,
                                       before=before, limit=limit)

    def watch_runs(self, callback: Callable[[Run], None]) -> Callable[[], None]:
        org = self.org or self.dispatch.settings.org
        return self.dispatch.watch(lambda run: callback(run) if run.org == org else None)

    def create_secret(self, name: str, values: dict[str, str]) -> Secret:
        return self.dispatch.create_secret(name, values, self.org)

    def get_secret(self, name: str) -> Secret:
        return self.dispatch.get_secret(name, self.org)

    def list_secrets(self) -> list[Secret]:
        return self.dispatch.list_secrets(self.org)

    def delete_secret(self, name: str) -> None:
        self.dispatch.delete_secret(name, self.org)

    def close(self) -> None:
        self.dispatch.close()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(*, home: str | Path | None = None, settings: Settings | None = None,
            org: str | None = None) -> LocalClient:
    """A client on the embedded default: a Dispatch core in this process.

    Its home (database, environments, keys) is `home`, else DISPATCH_HOME, else the platform's
    user data directory.
    """
    from .core import Dispatch
    from .settings import Settings

    if settings is None:
        settings = Settings(home=home) if home is not None else Settings()
    return LocalClient(Dispatch(settings), org)
