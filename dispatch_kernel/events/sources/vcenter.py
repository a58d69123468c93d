"""The vCenter source: vSphere events as CloudEvents, through pyvmomi and an EventHistoryCollector.

Each vSphere event becomes a CloudEvent whose type is the event class in dotted lower case
(`VmPoweredOffEvent` -> `vm.powered.off`, as Dispatch's vCenter driver named them; an
`EventEx`/`ExtendedEvent` uses its eventTypeId), whose data are the event's fields, whose source
is the vCenter URL and whose id is the vCenter's instance uuid and the event key.

The source follows the collector's latest page (up to 1,000 events, oldest first by key) and
checkpoints the last key it emitted after the event is on the bus: after a restart it resumes
right after it (no gap while fewer than a page of events happened meanwhile; no duplicate, and
a crash between emit and checkpoint is absorbed by the deterministic event id). Any error,
a dropped connection included, ends `run`; the supervisor reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any
from urllib.parse import urlparse, urlunparse

from ...model import InvalidRequestError
from ..cloudevent import make_event
from .base import EventSourceDriver

PAGE_SIZE = 1000  # the most a collector page holds
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z]|[0-9]|$)|[A-Z]?[a-z]+|[0-9]+")


def event_type(event: Any) -> str:
    """`VmPoweredOffEvent` -> `vm.powered.off`; extended events by their eventTypeId."""
    type_id = getattr(event, "eventTypeId", None)
    if type_id:
        return str(type_id)
    name = type(event).__name__.rsplit(".", 1)[-1]
    if name.endswith("Event") and name != "Event":
        name = name[: -len("Event")]
    return ".".join(word.lower() for word in _WORD.findall(name)) or "event"


def to_json(value: Any, depth: int = 0) -> Any:
    """A pyVmomi value as JSON: data objects as dicts, managed objects as their moref id."""
    from pyVmomi.VmomiSupport import DataObject, ManagedObject

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode(errors="replace")
    if isinstance(value, ManagedObject):
        return value._moId
    if isinstance(value, DataObject):
        if depth > 6:
            return str(value)
        out = {}
        for prop in value._GetPropertyList():
            item = getattr(value, prop.name, None)
            if item is None or (isinstance(item, list) and not item):
                continue
            out[prop.name] = to_json(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(item, depth + 1) for item in value]
    return str(value)


class VcenterSource(EventSourceDriver):
    """Follows a vCenter's events. Config: url (https://vc/sdk; http for the simulator),
    insecure (skip certificate checks), poll (seconds, default 1), since ("now" or "beginning"),
    types (vSphere event class names to follow; default all). Credentials come from a secret
    with `username` and `password`."""

    @classmethod
    def check_config(cls, config: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
        url = config.get("url")
        parsed = urlparse(str(url or ""))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidRequestError("a vcenter source needs a url such as https://vc.example/sdk")
        if parsed.password is not None:
            raise InvalidRequestError("put the vCenter credentials in a secret (username, password), "
                                      "not in the url: a source's config is not encrypted")
        if not secrets:
            raise InvalidRequestError("a vcenter source needs credentials: a secret with username "
                                      "and password (secrets=[...])")
        since = config.get("since", "now")
        if since not in ("now", "beginning"):
            raise InvalidRequestError("since must be 'now' or 'beginning'")
        out = dict(config, since=since, poll=float(config.get("poll", 1.0)))
        if out["poll"] <= 0:
            raise InvalidRequestError("poll must be positive")
        return out

    def _credentials(self) -> tuple[str, str]:
        for values in self.context.secrets.values():
            if "username" in values and "password" in values:
                return values["username"], values["password"]
        raise InvalidRequestError("the vcenter source's secrets hold no username and password")

    def public_url(self) -> str:
        parsed = urlparse(self.context.config["url"])
        netloc = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
        return urlunparse(parsed._replace(netloc=netloc))

    def connect(self) -> tuple[Any, Any, str]:
        """A session, an event collector with the largest page, and the vCenter's instance uuid."""
        from pyVim.connect import SmartConnect
        from pyVmomi import vim

        config = self.context.config
        parsed = urlparse(config["url"])
        user, password = self._credentials()
        options: dict[str, Any] = {}
        if parsed.scheme == "https" and config.get("insecure"):
            options["disableSslCertValidation"] = True
        si = SmartConnect(host=parsed.hostname, port=parsed.port or (443 if parsed.scheme == "https" else 80),
                          user=user, pwd=password, protocol=parsed.scheme, path=parsed.path or "/sdk",
                          connectionPoolTimeout=30, **options)
        content = si.RetrieveContent()
        spec = vim.event.EventFilterSpec()
        if config.get("types"):
            spec.eventTypeId = list(config["types"])
        collector = content.eventManager.CreateCollectorForEvents(spec)
        collector.SetCollectorPageSize(PAGE_SIZE)
        return si, collector, content.about.instanceUuid

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        si, collector, instance = await loop.run_in_executor(None, self.connect)
        try:
            state = self.context.load_state()
            last = state.get("last_key")
            if last is None or state.get("instance") != instance:
                if self.context.config.get("since") == "beginning":
                    last = 0
                else:
                    page = await loop.run_in_executor(None, lambda: collector.latestPage)
                    last = max((e.key for e in page), default=0)
                self.context.save_state({"last_key": last, "instance": instance})
            self.context.log.info("following %s after event %s", self.public_url(), last)
            while True:
                page = await loop.run_in_executor(None, lambda: collector.latestPage)
                fresh = sorted((e for e in page if e.key > last), key=lambda e: e.key)
                if fresh and page and min(e.key for e in page) > last + 1 and len(page) >= PAGE_SIZE:
                    self.context.log.warning("more than %d events since event %s: some were missed",
                                             PAGE_SIZE, last)
                for event in fresh:
                    await self.context.emit(self.to_cloudevent(event, instance))
                    last = event.key
                    self.context.save_state({"last_key": last, "instance": instance})
                await asyncio.sleep(float(self.context.config.get("poll", 1.0)))
        finally:
            def disconnect() -> None:
                from pyVim.connect import Disconnect

                try:
                    collector.DestroyCollector()
                    Disconnect(si)
                except Exception:
                    pass

            loop.run_in_executor(None, disconnect)

    def to_cloudevent(self, event: Any, instance: str) -> dict[str, Any]:
        data = to_json(event)
        data["eventType"] = type(event).__name__.rsplit(".", 1)[-1]
        subject = None
        vm = getattr(event, "vm", None)
        if vm is not None and getattr(vm, "name", None):
            subject = vm.name
        created = getattr(event, "createdTime", None)
        when = created.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if created else None
        return make_event(event_type(event), data, source=self.public_url(),
                          id=f"{instance}/{event.key}", subject=subject, time=when)
