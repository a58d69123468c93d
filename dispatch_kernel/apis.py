"""ApiManager: Dispatch's API manager. APIs (entities in the store) route HTTP requests to
functions; this checks them (methods, path templates, hosts, CORS, auth, conflicts) and keeps
each organization's route table, rebuilt when the APIs change here or another process has
written the store.

Two APIs may not route the same method, host and path shape. Checked against the stored APIs,
that would hold only within one process: two servers creating conflicting APIs at the same
moment would each find the other absent. So an API also claims its routes in the store
(EntityStore.claim, unique keys), before it is written; the second claimer is refused.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from .entities import Api
from .gateway.routes import (
    RouteTable,
    check_conflicts,
    check_hosts,
    check_methods,
    check_origin,
    check_protocols,
    describe_key,
    parse_template,
    route_keys,
)
from .model import ConflictError, InvalidRequestError, check_name
from .store.base import EntityStore

AUTH = ("public", "token")
STORE_POLL = 0.02  # seconds between checks whether another process changed the store
TABLES_KEPT = 256  # organizations whose route tables are kept (the least recently used go)
CORS_MAX_AGE = 600  # seconds a browser may keep a preflight's answer, unless the API says
CLAIMS = "api-routes"  # the store's claim scope of APIs' routes
# Seconds a route claim whose API is not stored is taken as another process's create in flight
# (after that, as left behind by a process that died between claiming and writing).
CLAIM_GRACE = 60.0
_FIELDS = ("function", "methods", "paths", "hosts", "protocols", "cors", "auth", "enabled", "tags")


class ApiManager:
    """APIs of every organization, and their route tables."""

    def __init__(self, store: EntityStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # one change at a time: conflicts are checked against the rest
        # org -> (store version, this manager's generation, when checked, the table)
        self._tables: OrderedDict[str, tuple[int, int, float, RouteTable]] = OrderedDict()
        self._tables_lock = threading.Lock()
        # Bumped by every change made here: the store's version only tells of other processes'
        # writes, and a table built while a change was being made here must not outlive it.
        self._generation = 0

    # ------------------------------------------------------------------ records

    def create(self, name: str, function: str, *, org: str, methods: Iterable[str] | None = None,
               paths: Iterable[str] | None = None, hosts: Iterable[str] | None = None,
               protocols: Iterable[str] | None = None, cors: bool | Mapping[str, Any] | None = False,
               auth: str = "public", enabled: bool = True, tags: Mapping[str, str] | None = None) -> Api:
        """Route `methods` on `paths` (and `hosts`, if any) to `function`; ConflictError when an
        enabled API of the organization routes one of them already, or the name is taken."""
        api = Api(name=check_name("API", name), org=org, status="READY")
        _apply(api, {"function": function, "methods": ["GET"] if methods is None else methods,
                     "paths": [] if paths is None else paths, "hosts": hosts or [],
                     "protocols": ["http", "https"] if protocols is None else protocols, "cors": cors,
                     "auth": auth, "enabled": enabled, "tags": tags or {}})
        with self._lock:
            check_conflicts(api, self.store.list(Api, org))
            self._claim(api)
            try:
                self.store.create(api)
            except BaseException:
                self.store.release_claims(CLAIMS, org, api.id)
                raise
        self._forget(org)
        return api

    def update(self, name: str, *, org: str, revision: int | None = None, **changes: Any) -> Api:
        """Change some fields of an API (the others stay). With `revision`, only if that is
        the stored one (ConflictError otherwise)."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise InvalidRequestError(f"an API has no field {unknown[0]!r} (fields: {', '.join(_FIELDS)})")
        with self._lock:
            api = self.store.get(Api, org, name)
            if revision is not None and revision != api.revision:
                raise ConflictError(f"API {name!r} has changed (revision {api.revision}, the update was "
                                    f"based on {revision}); fetch it again and retry")
            before = route_keys(api)
            _apply(api, {key: value for key, value in changes.items() if value is not None})
            check_conflicts(api, self.store.list(Api, org))
            self._claim(api)
            api.touch()
            try:
                self.store.update(api)
            except BaseException:
                self.store.claim(CLAIMS, org, api.id, before)  # its routes as stored
                raise
        self._forget(org)
        return api

    def get(self, name: str, org: str) -> Api:
        """The API called `name`; NotFoundError when there is none."""
        return self.store.get(Api, org, name)

    def list(self, org: str, function: str | None = None) -> list[Api]:
        """Every API of the organization (of one function, if given), by name."""
        apis = self.store.list(Api, org)
        return apis if function is None else [api for api in apis if api.function == function]

    def delete(self, name: str, org: str) -> None:
        """Remove an API: its routes answer 404 from now on."""
        with self._lock:
            api = self.store.get(Api, org, name)
            self.store.delete(Api, org, name)
            self.store.release_claims(CLAIMS, org, api.id)
        self._forget(org)

    def _claim(self, api: Api) -> None:
        """Hold the API's routes in the store, or raise ConflictError naming who holds one."""
        keys = route_keys(api)
        for _ in range(3):
            held = self.store.claim(CLAIMS, api.org, api.id, keys)
            if held is None:
                return
            owner = next((other for other in self.store.list(Api, api.org) if other.id == held.owner), None)
            if owner is not None and held.key in route_keys(owner):
                check_conflicts(api, [owner])  # raises, in the usual words
            if owner is None and held.age < CLAIM_GRACE:
                raise ConflictError(f"another API being created at this moment routes {describe_key(held.key)}")
            # Left behind (its API gone, or changed by a process that died before it could say
            # so): set the holder's claims to what it routes now, and try again.
            if owner is None:
                self.store.release_claims(CLAIMS, api.org, held.owner)
            else:
                self.store.claim(CLAIMS, api.org, owner.id, route_keys(owner))
        raise ConflictError(f"the routes of API {api.name!r} are being changed by another process; try again")

    # ------------------------------------------------------------------ routes

    def table(self, org: str) -> RouteTable:
        """The organization's enabled routes. Changes made here are seen at once; changes by
        another process once the store says it was written (asked at most every STORE_POLL)."""
        cached = self._tables.get(org)
        clock = time.monotonic()
        generation = self._generation
        if cached is not None and cached[1] == generation and clock - cached[2] < STORE_POLL:
            return cached[3]
        version = self.store.version()  # both read before the APIs: a change after is seen next time
        if cached is not None and cached[0] == version and cached[1] == generation:
            table = cached[3]
        else:
            table = RouteTable(self.store.list(Api, org))
        with self._tables_lock:
            self._tables[org] = (version, generation, clock, table)
            self._tables.move_to_end(org)
            while len(self._tables) > TABLES_KEPT:
                self._tables.popitem(last=False)
        return table

    def _forget(self, org: str) -> None:
        with self._tables_lock:
            self._generation += 1
            self._tables.pop(org, None)


def _apply(api: Api, values: Mapping[str, Any]) -> None:
    """Set checked values on `api`: InvalidRequestError names the first bad one."""
    for key, value in values.items():
        if key == "function":
            api.function = check_name("function", value)
        elif key == "methods":
            api.methods = check_methods(_strings(value, "methods"))
        elif key == "paths":
            paths = [parse_template(path).text for path in _strings(value, "paths")]
            if not paths:
                raise InvalidRequestError("an API needs at least one path, e.g. /hello/{name}")
            api.paths = list(dict.fromkeys(paths))
        elif key == "hosts":
            api.hosts = check_hosts(_strings(value, "hosts"))
        elif key == "protocols":
            api.protocols = check_protocols(_strings(value, "protocols"))
        elif key == "cors":
            api.cors = _cors(value)
        elif key == "auth":
            if value not in AUTH:
                raise InvalidRequestError(f"auth must be one of {', '.join(AUTH)}, not {value!r}")
            api.auth = value
        elif key == "enabled":
            if not isinstance(value, bool):
                raise InvalidRequestError("enabled must be true or false")
            api.enabled = value
        elif key == "tags":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in value.items()):
                raise InvalidRequestError("tags must be a map of strings to strings")
            api.tags = dict(value)
    if not api.paths:
        raise InvalidRequestError("an API needs at least one path, e.g. /hello/{name}")


def _strings(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidRequestError(f"{what} must be a list of strings")
    return list(value)


def _cors(value: Any) -> bool | dict[str, Any]:
    """False, True (any origin), or {origins, headers, max_age} with its defaults filled in."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if not isinstance(value, Mapping):
        raise InvalidRequestError("cors must be true, false or {origins, headers, max_age}")
    unknown = sorted(set(value) - {"origins", "headers", "max_age"})
    if unknown:
        raise InvalidRequestError(f"cors has no field {unknown[0]!r} (origins, headers, max_age)")
    origins = [check_origin(origin) for origin in _strings(value.get("origins", ["*"]), "cors origins")]
    headers = value.get("headers")
    if headers is not None:
        headers = [str(h) for h in _strings(headers, "cors headers")]
        if any(not h or any(c in h for c in " \t\r\n:,") for h in headers):
            raise InvalidRequestError("cors headers must be header names")
    max_age = value.get("max_age", CORS_MAX_AGE)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= 86400:
        raise InvalidRequestError("cors max_age must be whole seconds from 0 to 86400")
    return {"origins": origins or ["*"], "headers": headers, "max_age": max_age}


__all__ = ["AUTH", "ApiManager"]
