"""Authorization's cost: the same requests as the bootstrap administrator (one policy) and as a
user allowed by the last of 100 policies, half of whose subjects are patterns that every
request's subject is matched against.

Rows: the in-process decision (IdentityManager.authorize, with its check that no policy changed
since), and the p50 of one client's `POST runs` with wait (REST) and of GETs of an `auth: token`
gateway route with the server's token as bearer (the extension), each beside the same requests
as the bootstrap administrator, measured in turns in the same run. The policies are changed
through the store the server uses, from this process, between the turns (the server sees the
change through the store's version). Every process listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import dispatch_kernel as dk
from dispatch_kernel.identity import IdentityManager, Principal
from dispatch_kernel.images.services import free_port, stop_process
from dispatch_kernel.model import actor
from dispatch_kernel.settings import Settings
from dispatch_kernel.store.sqlite import SqliteStore

from . import Result, p50
from .server import BASE_URL, _client, _load, _start_jupyter

POLICIES = 100
ORG = "default"


def inc(x: str) -> int:
    """The trivial function: everything measured is overhead."""
    return int(x) + 1


def _enforce(identity: IdentityManager, owner: str, on: bool) -> None:
    """With `on`, 100 policies and the owner allowed only by the last (no longer an
    administrator); without, the bootstrap's one policy, the owner administrator again."""
    admins = [{"subjects": [owner], "resources": ["*"], "actions": ["*"]}]
    if on:
        identity.create_policy("bench-admins", ORG, [{"subjects": ["bench-admin"], "resources": ["*"],
                                                      "actions": ["*"]}])
        identity.update_policy("admins", ORG, [{"subjects": ["bench-admin"], "resources": ["*"], "actions": ["*"]}])
        for i in range(POLICIES - 2):
            subjects = [f"user-{i}@example.org"] if i % 2 else [f"group:team-{i}-*", f"serviceaccount:bot-{i}*"]
            identity.create_policy(f"p{i:03d}", ORG, [{"subjects": subjects, "actions": ["get", "invoke"],
                                                       "resources": [f"functions/team-{i}-*", "runs"]}])
        identity.create_policy("p999", ORG, [{"subjects": [owner], "actions": ["invoke", "get"],
                                              "resources": ["functions/inc", "runs"]}])
    else:
        identity.update_policy("admins", ORG, admins)
        for policy in identity.list_policies(ORG):
            if policy.name != "admins":
                identity.delete_policy(policy.name, ORG)


def _decision_us(identity: IdentityManager, owner: str, count: int) -> float:
    principal = Principal(owner)
    identity.authorize(ORG, principal, "invoke", "functions/inc")  # compiled once
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            identity.authorize(ORG, principal, "invoke", "functions/inc")
        samples.append((time.perf_counter() - started) / count * 1e6)
    return p50(samples)


def _route_load(port: int, token: str, total: int) -> list[float]:
    request = (f"GET {BASE_URL}dispatch/http/default/inc/1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    latencies: list[float] = []
    asyncio.run(_client(port, request, total, latencies))
    return latencies


def bench_authz(quick: bool) -> list[Result]:
    """REST and gateway p50 and the decision itself, 100 policies vs the bootstrap admin.

    The end-to-end rows are noisy on a shared machine (a p50 of 1.4 ms moves by a few hundred
    µs between batches), far more than the 50 µs they look for. So they are measured in many
    short turns in the order off, on, on, off, ... (a drift in the machine's load weighs on
    both alike), and the figure is the median of each pair's difference of p50s."""
    total = 100 if quick else 250
    pairs = 4 if quick else 12
    home = Path(tempfile.mkdtemp(prefix="dk-bench-authz-"))
    token = secrets.token_hex(16)
    port = free_port()
    owner = actor()  # the server runs as this user: its owner
    jupyter = _start_jupyter(home, port, token)
    store = None
    turns: dict[str, dict[bool, list[float]]] = {name: {False: [], True: []} for name in ("rest", "gateway")}
    found: dict[bool, dict[str, list[float]]] = {on: {"rest": [], "gateway": [], "decision": []}
                                                 for on in (False, True)}
    try:
        with dk.connect(f"http://127.0.0.1:{port}{BASE_URL}", token=token) as client:
            client.deploy(inc, min_workers=1, max_workers=1)
            client.create_api("inc", "inc", paths=["/inc/{x}"], auth="token")
        store = SqliteStore(Settings(home=home))
        identity = IdentityManager(store, ORG)
        _load(port, token, 200, clients=1)  # warm the server before the first turn
        current = False  # the bootstrap's one policy
        for pair in range(pairs):
            for on in ((False, True) if pair % 2 == 0 else (True, False)):
                if on != current:
                    _enforce(identity, owner, on)
                    current = on
                _load(port, token, 20, clients=1)  # the server compiles the new policies
                _route_load(port, token, 20)
                rest = _load(port, token, total, clients=1)[0]
                gateway = _route_load(port, token, total)
                found[on]["rest"].extend(rest)
                found[on]["gateway"].extend(gateway)
                turns["rest"][on].append(p50(rest))
                turns["gateway"][on].append(p50(gateway))
                found[on]["decision"].append(_decision_us(identity, owner, 2000 if quick else 20000))
        _enforce(identity, owner, False)
    finally:
        if store is not None:
            store.close()
        stop_process(jupyter, grace=20)
        shutil.rmtree(home, ignore_errors=True)

    us = 1e6
    rows = []
    for name, metric in (("rest", "POST runs wait"), ("gateway", "token route GET")):
        admin, enforced = p50(found[False][name]) * us, p50(found[True][name]) * us
        added = p50([(on - off) * us for off, on in zip(turns[name][False], turns[name][True])])
        rows.append(Result(f"authz_{name}", f"p50 µs, 1 client, {metric}, {POLICIES} policies", enforced,
                           "bootstrap admin", admin, "<= +50 µs", added <= 50,
                           f"{added:+.0f} µs added at p50 with {POLICIES} policies: the median of {pairs} "
                           f"paired turns' differences ({len(found[True][name])} requests each way; "
                           f"the pooled p50s differ by {enforced - admin:+.0f} µs)"))
    admin, enforced = p50(found[False]["decision"]), p50(found[True]["decision"])
    rows.append(Result("authz", f"authorize µs, {POLICIES} policies", enforced, "bootstrap admin", admin,
                       "<= 50 µs", enforced <= 50))
    return rows


BENCHMARKS = {"authz": bench_authz}
