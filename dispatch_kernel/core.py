"""Dispatch: the core every face talks to. It builds the managers and plug-ins from Settings,
wires them together and owns their lifetimes; the work is the managers'.

    core = Dispatch(Settings(home=...))
    core.functions   FunctionManager   deploy, resolve, get, list, delete
    core.runs        RunManager        call, spawn, invoke, submit, map, runs, cancel, watch
    core.secrets     SecretManager     create, get, list, delete
    core.images      ImageManager      base images, images, what drivers run
    core.events      EventManager      emit, subscriptions, event sources (started on first use)
    core.apis        ApiManager        APIs (HTTP routes to functions) and their route tables
    core.identity    IdentityManager   organizations, service accounts, policies, authorize()
    core.drivers     the driver plug-ins, made on first use by name
    core.store       the EntityStore plug-in

One plain object, no module state: the Jupyter server extension holds one, each test builds
its own, and the embedded client builds one in the caller's process.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from . import plugins
from .cluster import Cluster
from .drivers.base import FaaSDriver
from .functions import FunctionManager, prestart
from .hosts import HostLease
from .images.manager import ImageManager
from .runs.manager import RunManager
from .runtime.forkserver import ForkServerProcess
from .secrets import SecretManager, load_key
from .settings import Settings
from .store.base import EntityStore

if TYPE_CHECKING:
    from .apis import ApiManager
    from .events.manager import EventManager
    from .identity import IdentityManager

log = logging.getLogger(__name__)


class Dispatch:
    """The managers of one Dispatch, built from Settings."""

    def __init__(self, settings: Settings | None = None, *,
                 fork_server: ForkServerProcess | None = None) -> None:
        """The core of `settings`. `fork_server` is one connect() started for this interpreter
        before importing the core: the default driver adopts it (or closes it)."""
        self.settings = settings = settings or Settings()
        self.secrets: SecretManager | None = None
        settings.home.mkdir(parents=True, exist_ok=True)
        self.drivers: plugins.Loaded[FaaSDriver] = plugins.Loaded("driver", self._make_driver)
        # The first deploy of a fresh process would wait ~50 ms for the fork server of this
        # interpreter's environment: have it start while the rest is built.
        threading.Thread(target=prestart, args=(settings, self.drivers, fork_server), name="dispatch-prestart",
                         daemon=True).start()
        try:
            self.store: EntityStore = plugins.load("store", settings.store)(settings)
        except BaseException:
            self.drivers.close()  # and with it the fork server being started
            raise
        try:
            self.lease = HostLease(settings.home / "hosts")
            self.secrets = SecretManager(self.store, load_key(settings.home / "secret.key"))
            # A driver made before the secrets (the prestart thread's) gets them now; the
            # loader's lock orders this after any make in progress.
            for driver in self.drivers.made():
                driver.secrets = self.secrets
            self.secrets.check_key()  # a key other than the store's is refused before anything runs
            self.cluster = Cluster(self.store, self.lease)
            self.images = ImageManager(settings, self.store)
            self.functions = FunctionManager(settings, self.store, self.images, self.drivers, self.secrets)
            self.runs = RunManager(settings, self.store, self.functions, self.secrets, self.lease.id)
        except BaseException:
            self.store.close()
            self.drivers.close()
            if hasattr(self, "lease"):
                self.lease.release()
            raise
        if self.store.shared:  # other servers are alive: only the dead ones' runs are settled
            self.settled_on_start = self.cluster.settle_dead()
        else:
            self.settled_on_start = self.runs.settle_interrupted(self.lease)
        self.cluster.start(lambda org, run_id: self.runs.cancel_run(run_id, org=org))
        self._events: EventManager | None = None
        self._events_lock = threading.Lock()
        # Made on first use: a notebook's first deploy pays for neither (route parsing, policies).
        self._apis: ApiManager | None = None
        self._identity: IdentityManager | None = None
        self._lazy_lock = threading.Lock()
        self._closed = False
        # With a shared store, sources created through another server may fall to this one.
        if settings.events and ((settings.home / "events.db").exists() or settings.bus != "sqlite"
                                or self.store.shared):
            try:
                self.events  # deliveries left by a previous process go on without waiting for an emit
            except Exception:  # reported, not fatal: functions work without events
                log.exception("the event manager could not start (bus %r)", settings.bus)

    def _make_driver(self, cls: type[FaaSDriver]) -> FaaSDriver:
        """A driver plug-in, given the secret manager for credentials kept as Dispatch secrets."""
        driver = cls(self.settings)
        driver.secrets = self.secrets
        return driver

    @property
    def events(self) -> EventManager:
        """The event manager, started on first use: its bus and sources need a loop and threads
        that a core without events should not pay for."""
        if self._events is None:
            with self._events_lock:
                if self._events is None:
                    from .events.bus.base import Host
                    from .events.manager import EventManager

                    self._events = EventManager(self.settings, self.store, self.runs, self.secrets,
                                                Host(self.lease.id, self.cluster.is_alive))
        return self._events

    def org(self, org: str | None) -> str:
        """`org`, or the organization of these settings when it is None."""
        return org or self.settings.org

    @property
    def apis(self) -> ApiManager:
        """The API manager (HTTP routes to functions)."""
        if self._apis is None:
            with self._lazy_lock:
                if self._apis is None:
                    from .apis import ApiManager

                    self._apis = ApiManager(self.store)
        return self._apis

    @property
    def identity(self) -> IdentityManager:
        """The identity manager (organizations, service accounts, policies)."""
        if self._identity is None:
            with self._lazy_lock:
                if self._identity is None:
                    from .identity import IdentityManager

                    self._identity = IdentityManager(self.store, self.settings.org)
        return self._identity

    @property
    def closed(self) -> bool:
        """Whether close() has been called."""
        return self._closed

    def close(self) -> None:
        """Stop workers and release the store; runs still in flight fail as interrupted."""
        if self._closed:
            return
        self._closed = True
        # Each part closes whatever the one before it did: a failure is raised at the end,
        # after every worker has stopped and the store is released.
        steps = [self.functions.close, self.runs.stop, self.drivers.close, self.runs.close, self.images.close,
                 self.cluster.close, self.store.close, self.lease.release]
        if self._events is not None:
            steps.insert(0, self._events.close)  # deliveries first; undelivered events stay on the bus
        failure: BaseException | None = None
        for step in steps:
            try:
                step()
            except BaseException as exc:  # the next steps still run
                log.exception("closing the core: %s failed", step.__qualname__)
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> Dispatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["Dispatch"]
