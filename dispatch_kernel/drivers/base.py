"""The FaaSDriver interface, in the manner of jupyter_client's kernel provisioners.

A driver runs a function's jobs somewhere: worker processes here, containers, a cluster, a FaaS
engine. It declares what it runs (`runs`): a Python environment on this machine or an OCI image.
The core has the image manager make that artifact and hands it to `deploy`; a driver never
builds one itself. Its options are `Settings.plugin_options[name]` (`self.options`).

Drivers are synchronous and thread-safe: the core calls `execute` from many threads at once,
and a blocking call costs less than a hop through an event loop on the warm path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

from ..images.base import Environment, FunctionImage, Progress
from ..model import Function, TextEnum
from ..packaging import FunctionSource
from ..runtime.forkserver import ForkServerProcess
from ..runtime.protocol import Job, Outcome
from ..settings import Settings

NEVER_STARTED = "the run was cancelled before it reached a worker"
"""The message of the SystemError outcome of a run cancel() kept from starting."""

OutcomeSink = Callable[[list[Outcome]], None]
"""Takes outcomes of a batch as they arrive (see FaaSDriver.execute)."""

Artifact = Environment | FunctionImage
"""What a driver is given to run: an Environment or a FunctionImage, as its `runs` says."""


class Runs(TextEnum):
    """What a driver runs, and so what the image manager makes for it before deploy()."""

    ENVIRONMENT = "environment"  # a Python environment on this machine (images.base.Environment)
    IMAGE = "image"  # the function's OCI image in the registry (images.base.FunctionImage)


class FaaSDriver(ABC):
    """Runs a function's jobs somewhere: worker processes, containers, a cluster."""

    name: str = ""  # the entry point's name, under which the driver reads its options
    # The core's SecretManager, set when the core makes the driver: a driver that logs in to
    # its engine (openfaas) reads the credentials from a Dispatch secret of the function's org.
    secrets: Any = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: dict[str, Any] = settings.options(self.name)

    @property
    @abstractmethod
    def runs(self) -> Runs:
        """What this driver runs; a subclass sets it as a class attribute (`runs = Runs.IMAGE`)."""

    def check(self, function: Function) -> None:
        """Raise DeployError when this driver cannot deploy `function` now (no cluster, no
        credentials); called before its artifact is made, so a deploy that cannot succeed
        fails before a long build. The default checks nothing."""

    @abstractmethod
    def deploy(self, function: Function, source: FunctionSource, artifact: Artifact,
               progress: Progress | None = None) -> None:
        """Make `function` (this revision of it) runnable from `artifact`; later runs use it.

        `artifact` is an Environment when `runs` is ENVIRONMENT (the function's code is then
        `source`) and a FunctionImage when it is IMAGE (the code is inside the image).
        """

    def prestart(self, artifact: Artifact, started: ForkServerProcess | None = None) -> None:
        """Get ready, ahead of any deploy, to run functions from `artifact` (called once per
        core, on a thread of its own, with the environment of functions that need nothing
        beyond the caller's interpreter), so the first deploy does not wait for it. `started`
        is a fork server connect() started for that interpreter before the core was imported:
        a driver adopts it or closes it. Optional: the default closes it and does nothing."""
        if started is not None:
            started.close()

    @abstractmethod
    def undeploy(self, function: Function) -> None:
        """Stop the function's workers; its runs in flight end first or fail."""

    def forget(self, function: Function) -> None:
        """Let go of what this process holds for `function`, which another process deleted:
        its workers here, what this driver remembers of it. What the driver made outside this
        process (a Deployment, an OpenFaaS function) was the deleting process's to remove.
        The default does nothing."""

    @abstractmethod
    def is_deployed(self, function: Function) -> bool:
        """True when this driver can run this revision of `function` now."""

    @abstractmethod
    def execute(self, function: Function, jobs: list[Job],
                on_done: OutcomeSink | None = None) -> list[Outcome]:
        """Run the jobs (blocking) and return one outcome per job, in order.

        A job that times out, exhausts its memory or loses its worker gets a SystemError
        outcome; the other jobs are unaffected. A driver that learns outcomes before the last
        job ends passes them to `on_done` as they arrive, in order (consecutive slices of the
        list it returns), so the first runs of a batch can be answered while the rest run; a
        driver that does not is still correct, only later.
        """

    def execute_queued(self, function: Function, jobs: list[Job],
                       on_done: OutcomeSink | None = None) -> list[Outcome]:
        """Run jobs that no caller waits on (spawned runs, event runs) as `execute` does, but
        through the engine's own queue where it has one (OpenFaaS's `/async-function`), so that
        no connection is held open through the engine for the length of a run. The default is
        `execute`."""
        return self.execute(function, jobs, on_done)

    def cancel(self, function: Function, run_id: str) -> bool:
        """Stop a run that `execute` is running now; False when this driver cannot (the run
        must then be left to finish), or ConflictError saying why when it never can. A stopped
        run's outcome is a SystemError, as for a lost worker; the core records it as CANCELLED."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Stop every worker."""


__all__ = ["NEVER_STARTED", "Artifact", "FaaSDriver", "OutcomeSink", "Runs"]
