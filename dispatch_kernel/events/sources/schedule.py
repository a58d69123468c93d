"""The schedule source: CloudEvents on a cron expression (croniter) or a fixed period.

Ticks are computed in the configured time zone (a cron's `0 2 * * *` is 02:00 there, across
daylight-saving changes). The last tick fired is checkpointed after its event is on the bus;
after downtime the source fires once for all the ticks it missed (data.missed says how many),
not once per tick. A tick's event id is derived from the source and the tick, so two processes
running the same source, or a crash between emit and checkpoint, never deliver a tick twice.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...model import InvalidRequestError
from ...units import parse_duration
from ..cloudevent import make_event
from .base import EventSourceDriver

DEFAULT_TYPE = "schedule.tick"
MAX_SCAN = 100_000  # cron ticks counted after downtime before the count is given as a lower bound


class ScheduleSource(EventSourceDriver):
    """Fires `event_type` (default schedule.tick) on `cron` or every `period`."""

    @classmethod
    def check_config(cls, config: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
        cron, period = config.get("cron"), config.get("period", config.get("every"))
        if (cron is None) == (period is None):
            raise InvalidRequestError("a schedule needs exactly one of 'cron' (e.g. '0 2 * * *') "
                                      "or 'period' (e.g. '30s', or seconds)")
        out: dict[str, Any] = {"timezone": str(config.get("timezone") or "UTC"),
                               "event_type": str(config.get("event_type") or DEFAULT_TYPE)}
        try:
            ZoneInfo(out["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidRequestError(f"unknown time zone {out['timezone']!r}") from None
        if cron is not None:
            from croniter import croniter

            if not isinstance(cron, str) or not croniter.is_valid(cron):
                raise InvalidRequestError(f"{cron!r} is not a valid cron expression")
            out["cron"] = cron
        else:
            try:
                seconds = parse_duration(period)
            except (ValueError, TypeError) as exc:
                raise InvalidRequestError(f"period {period!r} is not a duration: {exc}") from None
            if not seconds or seconds <= 0:
                raise InvalidRequestError("period must be positive")
            out["period"] = seconds
        if "data" in config:
            out["data"] = config["data"]
        return out

    # ------------------------------------------------------------------ ticks

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.context.config.get("timezone") or "UTC")

    def next_tick(self, after: float) -> float:
        """The first tick strictly after `after` (epoch seconds)."""
        config = self.context.config
        if "period" in config:
            origin, period = self.context.entity.created, float(config["period"])
            return origin + (math.floor((after - origin) / period) + 1) * period
        from croniter import croniter

        start = datetime.fromtimestamp(after, self._zone())
        return croniter(config["cron"], start).get_next(datetime).timestamp()

    def missed(self, last: float, now: float) -> tuple[float, int]:
        """The latest tick in (last, now] and how many ticks there were in that span."""
        config = self.context.config
        if "period" in config:
            origin, period = self.context.entity.created, float(config["period"])
            latest_k = math.floor((now - origin) / period)
            last_k = math.floor((last - origin) / period)
            return origin + latest_k * period, max(0, latest_k - last_k)
        tick, count, latest = last, 0, last
        while count < MAX_SCAN:
            tick = self.next_tick(tick)
            if tick > now:
                break
            latest, count = tick, count + 1
        return latest, count

    async def run(self) -> None:
        state = self.context.load_state()
        last = float(state.get("last", self.context.entity.created))
        while True:
            now = time.time()
            due = self.next_tick(last)
            if due > now:
                await asyncio.sleep(due - now)
                continue
            tick, count = self.missed(last, time.time())
            await self.fire(tick, missed=count - 1)
            last = tick
            self.context.save_state({"last": last})

    async def fire(self, tick: float, missed: int) -> None:
        entity, config = self.context.entity, self.context.config
        when = datetime.fromtimestamp(tick, timezone.utc).isoformat().replace("+00:00", "Z")
        data = {"scheduled": when, "missed": missed, "source": entity.name}
        if "data" in config:
            data["data"] = config["data"]
        await self.context.emit(make_event(
            config.get("event_type") or DEFAULT_TYPE, data, source=f"dispatch/schedule/{entity.name}",
            id=f"{entity.id}:{tick:.6f}", time=when,
        ))
