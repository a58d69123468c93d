"""The Client every face speaks, its in-process implementation, and the handles it returns.

`Client` is a Protocol: LocalClient drives a Dispatch core in this process; the REST client
implements the same methods over HTTP, so code written against one runs against the other.
This module imports nothing heavy: the core is built only when `connect()` is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .model import EventSource, Function, Run, RunStatus, Secret, Subscription
from .model import BaseImage, Image

if TYPE_CHECKING:
    from .core import Dispatch
    from .http_client import HttpClient
    from .settings import Settings


@runtime_checkable
class Client(Protocol):
    """What every face can do: deploy and manage functions, run them, manage secrets, and
    emit events, subscribe functions to them and manage event sources."""

    def deploy(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> FunctionHandle:
        """Package and deploy `fn`; options as Dispatch.deploy (timeout, secrets, schema_in,
        image=NAME to build it on an image, ...)."""

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
        """Call `callback(run)` on every run status change; returns a function that stops it.

        The callback runs on the thread that changed the run and must return quickly. Changes
        may arrive out of order (a finished run never becomes unfinished again); the embedded
        client sees the runs this process starts, a server client those of the server.
        """

    def create_secret(self, name: str, values: dict[str, str]) -> Secret:
        """Store a secret, encrypted."""

    def get_secret(self, name: str) -> Secret:
        """A secret with its values."""

    def list_secrets(self) -> list[Secret]:
        """Secrets without their values."""

    def delete_secret(self, name: str) -> None:
        """Remove a secret."""

    def create_base_image(self, name: str, image_url: str, *, language: str = "python3",
                          tags: dict[str, str] | None = None) -> BaseImage:
        """Register an image in a registry (registry/repository:tag) as a base for images; READY
        once its manifest is read, else ERROR with the reason."""

    def get_base_image(self, name: str) -> BaseImage:
        """The base image record."""

    def list_base_images(self) -> list[BaseImage]:
        """Every base image, by name."""

    def delete_base_image(self, name: str) -> None:
        """Forget a base image (what is in the registry stays)."""

    def create_image(self, name: str, base: str, *, requirements: Iterable[str] | None = None,
                     system_packages: Iterable[str] | None = None, tags: dict[str, str] | None = None,
                     progress: Callable[[str], None] | None = None) -> Image:
        """Build an image on base image `base` (system packages and requirements as layers of
        their own) and push it; the build log goes to `progress` line by line as it happens. A
        failed build is a DeployError and leaves the image in ERROR. deploy(fn, image=name)
        builds functions on it."""

    def get_image(self, name: str) -> Image:
        """The image record."""

    def list_images(self) -> list[Image]:
        """Every image, by name."""

    def delete_image(self, name: str) -> None:
        """Forget an image (what is in the registry stays; functions built on it keep running)."""

    def emit(self, type: str | dict[str, Any], data: Any = None, **attributes: Any) -> dict[str, Any]:
        """Publish a CloudEvent 1.0 of `type` with `data` (source=, id=, subject=, extensions=),
        or a whole event given as a dict; returns the event."""

    def subscribe(self, function: str, *, event_type: str, **options: Any) -> Subscription:
        """Run `function` for each event whose type matches `event_type` (exact, `prefix.*` or
        `*`), narrowed by `filters=` on attributes; name=, max_attempts=, tags=."""

    def list_subscriptions(self) -> list[Subscription]:
        """Every subscription, by name."""

    def get_subscription(self, name: str) -> Subscription:
        """One subscription."""

    def delete_subscription(self, name: str) -> None:
        """Remove a subscription."""

    def create_event_source(self, name: str, *, type: str, config: dict[str, Any] | None = None,
                            secrets: list[str] | None = None, **options: Any) -> EventSource:
        """Create and start an event source: schedule, webhook or vcenter (a webhook's token is
        in its config, this once)."""

    def list_event_sources(self) -> list[EventSource]:
        """Every event source, by name."""

    def get_event_source(self, name: str) -> EventSource:
        """One event source."""

    def delete_event_source(self, name: str) -> None:
        """Stop an event source and remove it."""

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

    def cancel_run(self, run_id: str) -> Run:
        """Cancel a QUEUED or RUNNING run (a finished one, or one sharing its worker's batch, is a ConflictError)."""
        return self.dispatch.cancel_run(run_id, self.org)

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

    # images (dispatch_kernel.images.oci): base image -> image -> function image

    def create_base_image(self, name: str, image_url: str, *, language: str = "python3",
                          tags: dict[str, str] | None = None) -> BaseImage:
        """Register a base image (registry/repository:tag) that images are built on."""
        return self.dispatch.create_base_image(name, image_url, language=language, org=self.org, tags=tags)

    def get_base_image(self, name: str) -> BaseImage:
        return self.dispatch.get_base_image(name, self.org)

    def list_base_images(self) -> list[BaseImage]:
        return self.dispatch.list_base_images(self.org)

    def delete_base_image(self, name: str) -> None:
        self.dispatch.delete_base_image(name, self.org)

    def create_image(self, name: str, base: str, *, requirements: Iterable[str] | None = None,
                     system_packages: Iterable[str] | None = None, tags: dict[str, str] | None = None,
                     progress: Callable[[str], None] | None = None) -> Image:
        """Build an image on base image `base` and push it; deploy(fn, image=name) builds on it."""
        return self.dispatch.create_image(name, base, requirements=requirements, system_packages=system_packages,
                                          org=self.org, tags=tags, progress=progress)

    def get_image(self, name: str) -> Image:
        return self.dispatch.get_image(name, self.org)

    def list_images(self) -> list[Image]:
        return self.dispatch.list_images(self.org)

    def delete_image(self, name: str) -> None:
        self.dispatch.delete_image(name, self.org)

    # events (dispatch_kernel.events)

    def emit(self, type: str | dict[str, Any], data: Any = None, **attributes: Any) -> dict[str, Any]:
        """Publish a CloudEvent (source=, id=, subject=, extensions=); returns the event."""
        return self.dispatch.emit(type, data, org=self.org, **attributes)

    def subscribe(self, function: str, *, event_type: str, **options: Any) -> Any:
        """Run `function` for each matching event (name=, filters=, max_attempts=)."""
        return self.dispatch.subscribe(function, event_type, org=self.org, **options)

    def list_subscriptions(self) -> list[Any]:
        return self.dispatch.list_subscriptions(self.org)

    def get_subscription(self, name: str) -> Any:
        return self.dispatch.get_subscription(name, self.org)

    def delete_subscription(self, name: str) -> None:
        self.dispatch.delete_subscription(name, self.org)

    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        return self.dispatch.dead_letters(subscription, self.org)

    def create_event_source(self, name: str, *, type: str, config: dict[str, Any] | None = None,
                            secrets: list[str] | None = None, **options: Any) -> Any:
        return self.dispatch.create_event_source(name, type, config=config, secrets=secrets,
                                                 org=self.org, **options)

    def list_event_sources(self) -> list[Any]:
        return self.dispatch.list_event_sources(self.org)

    def get_event_source(self, name: str) -> Any:
        return self.dispatch.get_event_source(name, self.org)

    def delete_event_source(self, name: str) -> None:
        self.dispatch.delete_event_source(name, self.org)

    def close(self) -> None:
        self.dispatch.close()

    def describe(self) -> str:
        """Where this client's functions live, in words."""
        return f"the embedded default (home {self.dispatch.settings.home})"

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(url: str | None = None, *, token: str | None = None, home: str | Path | None = None,
            settings: Settings | None = None, org: str | None = None) -> LocalClient | HttpClient:
    """A client on the Dispatch server at `url`, or on the embedded default.

    With a URL (a Jupyter server's, base URL included) the client speaks REST with `token`.
    Without one, DISPATCH_URL and DISPATCH_TOKEN are used when set and neither `home` nor
    `settings` is given: a kernel started by a server with the dispatch extension finds it so.
    Otherwise the embedded default: a Dispatch core in this process, whose home (database,
    environments, keys) is `home`, else DISPATCH_HOME, else the platform's user data directory.
    """
    import os

    if url is None and home is None and settings is None and os.environ.get("DISPATCH_URL"):
        url = os.environ["DISPATCH_URL"]
        token = token or os.environ.get("DISPATCH_TOKEN") or None
    if url is not None:
        from .http_client import HttpClient

        if home is not None or settings is not None or org is not None:
            raise TypeError("connect(url) talks to a server: home, settings and org are the server's")
        return HttpClient(url, token)

    from .core import Dispatch
    from .settings import Settings

    if settings is None:
        settings = Settings(home=home) if home is not None else Settings()
    return LocalClient(Dispatch(settings), org)
