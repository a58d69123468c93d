"""LocalClient: the Client over a Dispatch core in this process (the embedded default).

Each method is one call of one manager of the core, in the client's organization.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable

from ._handles import FunctionHandle, RunHandle
from ._iam_local import LocalIam
from .model import BaseImage, Function, Image, Run, Secret

if TYPE_CHECKING:
    from .core import Dispatch
    from .entities import Api, EventSource, Subscription


class LocalClient(LocalIam):
    """The Client over a Dispatch core in this process."""

    def __init__(self, dispatch: Dispatch, org: str | None = None) -> None:
        self.dispatch = dispatch
        self.org = dispatch.org(org)

    # functions

    def deploy(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> FunctionHandle:
        """Package and deploy `fn` (options as FunctionManager.deploy); a handle on it."""
        function = self.dispatch.functions.deploy(fn, name, org=self.org, **options)
        return FunctionHandle(self, function, fn if callable(fn) else None)

    def function(self, name: str) -> FunctionHandle:
        """A handle on an already deployed function."""
        return FunctionHandle(self, self.get_function(name))

    def get_function(self, name: str) -> Function:
        """The function record."""
        return self.dispatch.functions.get(name, self.org)

    def list_functions(self) -> list[Function]:
        """Every function, by name."""
        return self.dispatch.functions.list(self.org)

    def delete_function(self, name: str) -> None:
        """Remove a function (its runs stay)."""
        self.dispatch.functions.delete(name, self.org)

    # runs

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run with Python arguments, wait, return the output; RunError on failure."""
        return self.dispatch.runs.call(name, args, kwargs, org=self.org)

    def spawn(self, name: str, *args: Any, driver: str | None = None, **kwargs: Any) -> RunHandle:
        """Start a run with Python arguments without waiting; `driver` pins it to one of the
        function's drivers."""
        return RunHandle(self, self.dispatch.runs.spawn(name, args, kwargs, org=self.org, driver=driver))

    def map(self, name: str, items: Iterable[Any], *, return_exceptions: bool = False) -> Iterator[Any]:
        """Outputs of one run per item, in order."""
        return self.dispatch.runs.map(name, items, org=self.org, return_exceptions=return_exceptions)

    def invoke(self, name: str, input: Any = None, *, wait: bool = True, driver: str | None = None) -> Run:
        """Run with a JSON input; returns the run record (finished when `wait`)."""
        return self.dispatch.runs.invoke(name, input, wait=wait, org=self.org, driver=driver)

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """The run once finished."""
        return self.dispatch.runs.wait_run(run_id, timeout, org=self.org)

    def get_run(self, run_id: str) -> Run:
        """One run record."""
        return self.dispatch.runs.get_run(run_id, self.org)

    def cancel_run(self, run_id: str) -> Run:
        """Cancel a QUEUED or RUNNING run (a finished one, or one sharing its worker's batch, is a ConflictError)."""
        return self.dispatch.runs.cancel_run(run_id, org=self.org)

    def list_runs(self, *, function: str | None = None, status: str | None = None,
                  since: float | None = None, before: str | None = None, limit: int = 100) -> list[Run]:
        """Run records, newest first."""
        return self.dispatch.runs.list_runs(self.org, function=function, status=status, since=since,
                                            before=before, limit=limit)

    def watch_runs(self, callback: Callable[[Run], None]) -> Callable[[], None]:
        """Call `callback(run)` on every status change of this process's runs in this org."""
        org = self.org
        return self.dispatch.runs.watch(lambda run: callback(run) if run.org == org else None)

    # secrets

    def create_secret(self, name: str, values: dict[str, str]) -> Secret:
        """Store a secret, encrypted."""
        return self.dispatch.secrets.create(name, values, org=self.org)

    def get_secret(self, name: str) -> Secret:
        """A secret with its values."""
        return self.dispatch.secrets.get(name, self.org)

    def list_secrets(self) -> list[Secret]:
        """Secrets without their values."""
        return self.dispatch.secrets.list(self.org)

    def delete_secret(self, name: str) -> None:
        """Remove a secret."""
        self.dispatch.secrets.delete(name, self.org)

    # images (dispatch_kernel.images): base image -> image -> function image

    def create_base_image(self, name: str, image_url: str, *, language: str = "python3",
                          tags: dict[str, str] | None = None) -> BaseImage:
        """Register a base image (registry/repository:tag) that images are built on."""
        return self.dispatch.images.create_base_image(name, image_url, org=self.org, language=language, tags=tags)

    def get_base_image(self, name: str) -> BaseImage:
        """The base image record."""
        return self.dispatch.images.get_base_image(name, self.org)

    def list_base_images(self) -> list[BaseImage]:
        """Every base image, by name."""
        return self.dispatch.images.list_base_images(self.org)

    def delete_base_image(self, name: str) -> None:
        """Forget a base image (what is in the registry stays)."""
        self.dispatch.images.delete_base_image(name, self.org)

    def create_image(self, name: str, base: str, *, requirements: Iterable[str] | None = None,
                     system_packages: Iterable[str] | None = None, tags: dict[str, str] | None = None,
                     progress: Callable[[str], None] | None = None) -> Image:
        """Build an image on base image `base` and push it; deploy(fn, image=name) builds on it."""
        return self.dispatch.images.create_image(name, base, org=self.org, requirements=requirements,
                                                 system_packages=system_packages, tags=tags, progress=progress)

    def get_image(self, name: str) -> Image:
        """The image record."""
        return self.dispatch.images.get_image(name, self.org)

    def list_images(self) -> list[Image]:
        """Every image, by name."""
        return self.dispatch.images.list_images(self.org)

    def delete_image(self, name: str) -> None:
        """Forget an image (what is in the registry stays)."""
        self.dispatch.images.delete_image(name, self.org)

    # events (dispatch_kernel.events)

    def emit(self, type: str | dict[str, Any], data: Any = None, **attributes: Any) -> dict[str, Any]:
        """Publish a CloudEvent (source=, id=, subject=, extensions=); returns the event."""
        return self.dispatch.events.emit(type, data, org=self.org, **attributes)

    def subscribe(self, function: str, *, event_type: str, **options: Any) -> Subscription:
        """Run `function` for each matching event (name=, filters=, max_attempts=, tags=)."""
        return self.dispatch.events.subscribe(function, event_type, org=self.org, **options)

    def list_subscriptions(self) -> list[Subscription]:
        """Every subscription, by name."""
        return self.dispatch.events.list_subscriptions(self.org)

    def get_subscription(self, name: str) -> Subscription:
        """One subscription."""
        return self.dispatch.events.get_subscription(name, self.org)

    def delete_subscription(self, name: str) -> None:
        """Remove a subscription."""
        self.dispatch.events.delete_subscription(name, self.org)

    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        """Events given up after their subscription's max_attempts."""
        return self.dispatch.events.dead_letters(subscription, org=self.org)

    def replay_dead_letter(self, letter_id: str) -> Run:
        """Deliver a dead letter's event again, as a new run recorded as its replay."""
        return self.dispatch.events.replay_dead_letter(letter_id, org=self.org)

    def create_event_source(self, name: str, *, type: str, config: dict[str, Any] | None = None,
                            secrets: list[str] | None = None, **options: Any) -> EventSource:
        """Create and start an event source: schedule, webhook or vcenter."""
        return self.dispatch.events.create_event_source(name, type, org=self.org, config=config,
                                                        secrets=secrets, **options)

    def list_event_sources(self) -> list[EventSource]:
        """Every event source, by name."""
        return self.dispatch.events.list_event_sources(self.org)

    def get_event_source(self, name: str) -> EventSource:
        """One event source."""
        return self.dispatch.events.get_event_source(name, self.org)

    def delete_event_source(self, name: str) -> None:
        """Stop an event source and remove it."""
        self.dispatch.events.delete_event_source(name, self.org)

    # APIs (dispatch_kernel.gateway): HTTP routes to functions

    def create_api(self, name: str, function: str, *, methods: list[str] | None = None,
                   paths: list[str] | None = None, hosts: list[str] | None = None,
                   protocols: list[str] | None = None, cors: bool | dict[str, Any] = False,
                   auth: str = "public", enabled: bool = True, tags: dict[str, str] | None = None) -> Api:
        """Route HTTP `methods` on `paths` to `function`."""
        return self.dispatch.apis.create(name, function, org=self.org, methods=methods, paths=paths, hosts=hosts,
                                         protocols=protocols, cors=cors, auth=auth, enabled=enabled, tags=tags)

    def get_api(self, name: str) -> Api:
        """One API."""
        return self.dispatch.apis.get(name, self.org)

    def list_apis(self, function: str | None = None) -> list[Api]:
        """Every API (of one function, if given), by name."""
        return self.dispatch.apis.list(self.org, function)

    def update_api(self, name: str, *, revision: int | None = None, **changes: Any) -> Api:
        """Change some fields of an API (with `revision`: only if it is still that one)."""
        return self.dispatch.apis.update(name, org=self.org, revision=revision, **changes)

    def delete_api(self, name: str) -> None:
        """Remove an API: its routes answer 404."""
        self.dispatch.apis.delete(name, self.org)

    def api_urls(self, api: Api) -> list[str]:
        """Paths below the root of the gateway that serves them (`dispatch gateway`)."""
        from .gateway.routes import api_urls

        return api_urls(api, None)

    # lifecycle

    def describe(self) -> str:
        """Where this client's functions live, in words."""
        return f"the embedded default (home {self.dispatch.settings.home})"

    def close(self) -> None:
        """Close the core: its workers end."""
        self.dispatch.close()

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["LocalClient"]
