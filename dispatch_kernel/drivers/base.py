"""The FaaSDriver interface, in the manner of jupyter_client's kernel provisioners.

Drivers are synchronous and thread-safe: the core calls `execute` from many threads at once,
and a blocking call costs less than a hop through an event loop on the warm path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from ..images.base import Environment, Progress
from ..model import Function
from ..packaging import FunctionSource
from ..runtime.protocol import Job, Outcome
from ..settings import Settings


NEVER_STARTED = "the run was cancelled before it reached a worker"
"""The message of the SystemError outcome of a run cancel() kept from starting."""

OutcomeSink = Callable[[list[Outcome]], None]
"""Takes outcomes of a batch as they arrive (see FaaSDriver.execute)."""


class FaaSDriver(ABC):
    """Runs a function's jobs somewhere: worker processes, containers, a cluster."""

    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def deploy(self, function: Function, source: FunctionSource, environment: Environment,
               progress: Progress | None = None) -> None:
        """Make `function` (this revision of it) runnable; later runs use this code."""

    @abstractmethod
    def undeploy(self, function: Function) -> None:
        """Stop the function's workers; its runs in flight end first or fail."""

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

    def cancel(self, function: Function, run_id: str) -> bool:
        """Stop a run that `execute` is running now; False when this driver cannot (the run
        must then be left to finish). A stopped run's outcome is a SystemError, as for a
        lost worker; the core records it as CANCELLED."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Stop every worker."""
