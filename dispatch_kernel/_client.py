"""The Client protocol: what every face can do, whichever client it holds.

Two implementations: LocalClient (_local.py) drives a Dispatch core in this process; HttpClient
(_http.py) does the same over REST API v1. A test checks that both have exactly these public
methods, so code written against one runs against the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .model import BaseImage, Function, Image, Run, Secret

if TYPE_CHECKING:
    from ._handles import FunctionHandle, RunHandle
    from .entities import Api, EventSource, Organization, Policy, ServiceAccount, Subscription


@runtime_checkable
class Client(Protocol):
    """What every face can do: deploy and manage functions, run them, manage secrets, emit
    events, subscribe functions to them and manage event sources, route HTTP to them (APIs), and
    manage identity: organizations, service accounts and policies."""

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

    def spawn(self, name: str, *args: Any, driver: str | None = None, **kwargs: Any) -> RunHandle:
        """Start a run with Python arguments without waiting; `driver` pins it to one of the
        function's drivers (a function's own argument named driver cannot go through spawn)."""

    def map(self, name: str, items: Iterable[Any], *, return_exceptions: bool = False) -> Iterator[Any]:
        """Outputs of one run per item, in order."""

    def invoke(self, name: str, input: Any = None, *, wait: bool = True, driver: str | None = None) -> Run:
        """Run with a JSON input; returns the run record (finished when `wait`); `driver` pins it."""

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """The run once finished."""

    def get_run(self, run_id: str) -> Run:
        """One run record."""

    def cancel_run(self, run_id: str) -> Run:
        """Stop a run that has not finished: a QUEUED one never starts, a RUNNING one is
        stopped (its worker is ended); returns it CANCELLED. ConflictError for a finished run,
        or one that shares its worker with a batch."""

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

    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        """Events given up after their subscription's max_attempts, of one subscription or all,
        oldest first: {id, subscription, event, attempts, error}."""

    def replay_dead_letter(self, letter_id: str) -> Run:
        """Deliver a dead letter's event again: a new run of its subscription's function, tagged
        `dispatch/replay-of: LETTER_ID`; the letter leaves the dead letters once the run is
        recorded (if it cannot start, the error is raised and the letter stays)."""

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

    def create_api(self, name: str, function: str, *, methods: list[str] | None = None,
                   paths: list[str] | None = None, hosts: list[str] | None = None,
                   protocols: list[str] | None = None, cors: bool | dict[str, Any] = False,
                   auth: str = "public", enabled: bool = True, tags: dict[str, str] | None = None) -> Api:
        """Route HTTP `methods` (default GET) on `paths` (templates such as `/hello/{name}`) to
        `function`; without `hosts` they live under `/{org}/` of a gateway. ConflictError when an
        enabled API routes one of them already."""

    def get_api(self, name: str) -> Api:
        """One API."""

    def list_apis(self, function: str | None = None) -> list[Api]:
        """Every API (of one function, if given), by name."""

    def update_api(self, name: str, *, revision: int | None = None, **changes: Any) -> Api:
        """Change some fields of an API (function, methods, paths, hosts, protocols, cors, auth,
        enabled, tags); with `revision`, only if it is still that one (ConflictError)."""

    def delete_api(self, name: str) -> None:
        """Remove an API: its routes answer 404."""

    def api_urls(self, api: Api) -> list[str]:
        """Where the API's routes answer: URLs on the server of a REST client; for the embedded
        client, paths below the root of whichever gateway serves them (`dispatch gateway`)."""

    def create_organization(self, name: str, *, description: str = "",
                            tags: dict[str, str] | None = None) -> Organization:
        """A new organization, administered by its creator."""

    def get_organization(self, name: str) -> Organization:
        """One organization the caller is a member of."""

    def list_organizations(self) -> list[Organization]:
        """The organizations the caller is a member of, by name."""

    def delete_organization(self, name: str) -> None:
        """Remove an empty organization with its policies and service accounts."""

    def create_service_account(self, name: str, public_key: str, *, description: str = "",
                               tags: dict[str, str] | None = None) -> ServiceAccount:
        """A service account that signs JWTs with the private half of `public_key` (PEM)."""

    def get_service_account(self, name: str) -> ServiceAccount:
        """One service account (its public key)."""

    def list_service_accounts(self) -> list[ServiceAccount]:
        """The organization's service accounts, by name."""

    def delete_service_account(self, name: str) -> None:
        """Remove a service account: its tokens are refused from then on."""

    def create_policy(self, name: str, rules: list[dict[str, list[str]]], *, is_global: bool = False,
                      tags: dict[str, str] | None = None) -> Policy:
        """A policy: rules [{subjects, resources, actions}] (global: in every organization)."""

    def get_policy(self, name: str, *, is_global: bool = False) -> Policy:
        """One policy of the organization (or a global one)."""

    def list_policies(self) -> list[Policy]:
        """The organization's policies, then the global ones."""

    def update_policy(self, name: str, rules: list[dict[str, list[str]]], *, revision: int | None = None,
                      is_global: bool = False) -> Policy:
        """Replace a policy's rules (ConflictError when no administrator would be left)."""

    def delete_policy(self, name: str, *, is_global: bool = False) -> None:
        """Remove a policy (ConflictError when no administrator would be left)."""

    def whoami(self) -> dict[str, Any]:
        """Who this client is: subject, groups, organizations, its rules in this organization."""

    def explain(self, subject: str, action: str, resource: str) -> dict[str, Any]:
        """Which rule lets `subject` do `action` on `resource` here, or why none does."""

    def describe(self) -> str:
        """Where this client's functions live, in words."""

    def close(self) -> None:
        """Release what the client holds."""


__all__ = ["Client"]
