"""The `ctx` a Dispatch-style `handle(ctx, payload)` receives."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Context:
    """What a run knows about itself: secrets, the event or HTTP request, its deadline."""

    run_id: str
    function: str
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    event: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    deadline: float | None = None  # time.time() by which the run must finish, if limited
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("dispatch.function"))

    @property
    def remaining(self) -> float | None:
        """Seconds left before the deadline, or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.time())
