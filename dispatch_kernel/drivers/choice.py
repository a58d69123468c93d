"""One function on several drivers: which driver runs each run.

A function's `drivers` is either a weighted split, `{"local": 0.9, "kubernetes": 0.1}` (each run
goes to a driver drawn by weight: a canary), or an ordered failover list, `["kubernetes",
"local"]` (each run goes to the first driver that is up). A driver whose deploy failed is never
chosen; one whose `execute` raised is left out for DOWN_SECONDS, then tried again. A run may be
pinned to one driver (`fn.spawn(x, driver="local")`), which bypasses the choice.

The choice is on every run's path, so it is a draw and a bisect over a precomputed table, rebuilt
only when a driver goes down or comes back.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect
from dataclasses import dataclass, field
from typing import Any

from ..model import ConflictError, FunctionStatus, InvalidRequestError, check_name
from .base import FaaSDriver

SPLIT = "split"
FAILOVER = "failover"
DOWN_SECONDS = 30.0  # how long a driver whose execute raised is left out of the choice

# A driver's status in a function's driver_status: the words of a function's own status.
READY = FunctionStatus.READY.value
ERROR = FunctionStatus.ERROR.value


def parse_drivers(value: Any) -> tuple[str, dict[str, float]]:
    """(mode, {name: weight}) from a `drivers` option, in order; InvalidRequestError when it
    is neither a {name: weight} object nor a list of names.

    A failover list's weights are all 1 (they are not used). Text, as the CLI and the magic
    take it, is read too: "kubernetes,local" is a failover list, "local=0.9,kubernetes=0.1"
    a split.
    """
    if isinstance(value, str):
        value = _from_text(value)
    if isinstance(value, dict):
        if not value:
            raise InvalidRequestError("drivers must name at least one driver")
        weights: dict[str, float] = {}
        for name, weight in value.items():
            check_name("driver", name)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise InvalidRequestError(f"the weight of driver {name!r} must be a number >= 0, not {weight!r}")
            weights[name] = float(weight)
        if sum(weights.values()) <= 0:
            raise InvalidRequestError("the weights of drivers must not all be 0")
        return SPLIT, weights
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidRequestError("drivers must name at least one driver")
        names = [check_name("driver", name) for name in value]
        if len(set(names)) != len(names):
            raise InvalidRequestError(f"drivers names a driver twice: {names}")
        return FAILOVER, {name: 1.0 for name in names}
    raise InvalidRequestError('drivers must be {"name": weight, ...} (a split) or ["name", ...] (failover, in order)')


def driver_option(text: str | None) -> dict[str, Any]:
    """Deploy's option for a `--driver` value of the CLI or the magic: {"driver": name} for
    one, {"drivers": text} for several ("a,b" fails over, "a=0.9,b=0.1" splits)."""
    if text is None:
        return {}
    if "," in text or "=" in text:
        return {"drivers": parse_drivers(text)[1] if "=" in text else _from_text(text)}
    return {"driver": text}


def describe_drivers(drivers: dict[str, float] | list[str], status: dict[str, dict[str, str]]) -> str:
    """One line for people: each driver with its weight or place and its state."""
    if not drivers:
        return ""
    names = list(drivers)
    parts = []
    for index, name in enumerate(names):
        state = status.get(name) or {}
        share = f"{drivers[name]:g}" if isinstance(drivers, dict) else f"#{index + 1}"
        text = f"{name} {share} {state.get('status', '?')}"
        if state.get("reason"):
            text += f" ({state['reason']})"
        parts.append(text)
    return ("split: " if isinstance(drivers, dict) else "failover: ") + ", ".join(parts)


def _from_text(text: str) -> dict[str, float] | list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise InvalidRequestError("drivers must name at least one driver")
    if all("=" not in part for part in parts):
        return parts
    weights: dict[str, Any] = {}
    for part in parts:
        name, sep, weight = part.partition("=")
        if not sep:
            raise InvalidRequestError(f"give every driver a weight (name=weight) or none: {text!r}")
        try:
            weights[name.strip()] = float(weight)
        except ValueError:
            raise InvalidRequestError(f"the weight of driver {name.strip()!r} must be a number, not {weight!r}") from None
    return weights


@dataclass
class DriverEntry:
    """One of a function's drivers, as this process holds it."""

    name: str
    driver: FaaSDriver
    weight: float
    status: str = READY
    reason: str = ""
    down_until: float = 0.0  # time.monotonic() before which execute failures leave it out


@dataclass
class DriverChoice:
    """Picks the driver of each run of one function among its deployed drivers."""

    mode: str
    entries: list[DriverEntry]
    _names: list[str] = field(default_factory=list, init=False)
    _drivers: list[FaaSDriver] = field(default_factory=list, init=False)
    _bounds: list[float] = field(default_factory=list, init=False)  # cumulative weights
    _total: float = field(default=0.0, init=False)
    _next_check: float = field(default=float("inf"), init=False)  # when a down driver comes back
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._by_name = {entry.name: entry for entry in self.entries}
        self._rebuild()

    def _rebuild(self) -> None:
        clock = time.monotonic()
        usable = [e for e in self.entries if e.status == READY and e.down_until <= clock and
                  (self.mode == FAILOVER or e.weight > 0)]
        if not usable:  # every driver down for a while: try them all rather than fail every run
            usable = [e for e in self.entries if e.status == READY and (self.mode == FAILOVER or e.weight > 0)]
        if self.mode == FAILOVER:
            usable = usable[:1]
        bounds, total = [], 0.0
        for entry in usable:
            total += entry.weight
            bounds.append(total)
        downs = [e.down_until for e in self.entries if e.down_until > clock]
        self._names = [e.name for e in usable]
        self._drivers = [e.driver for e in usable]
        self._bounds, self._total = bounds, total
        self._next_check = min(downs) if downs else float("inf")

    def pick(self, pinned: str | None = None) -> tuple[str, FaaSDriver]:
        """(name, driver) for one run: the pinned driver, else the choice."""
        if pinned:
            entry = self._by_name.get(pinned)
            if entry is None:
                raise InvalidRequestError(f"{pinned!r} is not one of this function's drivers ({', '.join(self._by_name)})")
            if entry.status != READY:
                raise ConflictError(f"driver {pinned!r} of this function is not ready: {entry.reason}")
            return pinned, entry.driver
        if time.monotonic() >= self._next_check:
            with self._lock:
                self._rebuild()
        names = self._names
        if len(names) == 1:
            return names[0], self._drivers[0]
        if not names:
            raise ConflictError("none of this function's drivers is ready: " + self.reasons())
        from random import random  # here: a function with one driver (most) never needs it

        index = bisect(self._bounds, random() * self._total)
        index = min(index, len(names) - 1)  # random() * total may round up to total
        return names[index], self._drivers[index]

    def mark_down(self, name: str, reason: str) -> None:
        """Leave a driver out of the choice for DOWN_SECONDS: its execute failed."""
        entry = self._by_name.get(name)
        if entry is None:
            return
        with self._lock:
            entry.down_until = time.monotonic() + DOWN_SECONDS
            entry.reason = reason
            self._rebuild()

    def driver(self, name: str) -> FaaSDriver | None:
        """The driver called `name`, if the function has it."""
        entry = self._by_name.get(name)
        return entry.driver if entry is not None else None

    def ready(self) -> list[DriverEntry]:
        """The drivers whose deploy succeeded."""
        return [e for e in self.entries if e.status == READY]

    def reasons(self) -> str:
        """Why drivers are not serving, one `name: reason` per driver."""
        return "; ".join(f"{e.name}: {e.reason}" for e in self.entries if e.reason) or "no reason given"

    def status(self) -> dict[str, dict[str, str]]:
        """Each driver's state as the function record shows it."""
        return {e.name: {"status": e.status, "reason": e.reason} for e in self.entries}


__all__ = ["DOWN_SECONDS", "FAILOVER", "SPLIT", "DriverChoice", "DriverEntry", "describe_drivers",
           "driver_option", "parse_drivers"]
