"""What choosing among a function's drivers costs per run (drivers/choice.py).

`driver_choice`: warm `fn(1)` of a function with a failover list (["local", "container"],
the container driver pointed at an engine that does not exist, so every run is chosen and goes
to local) beside the same warm `fn(1)` of a single-driver function, the two taking turns so
that load from elsewhere falls on both alike; and one `DriverChoice.pick()` on a two-driver
split against `random.random()`, the draw it cannot do without.
"""

from __future__ import annotations

import pickle
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dispatch_kernel as dk
from dispatch_kernel.drivers.choice import DriverChoice, DriverEntry
from dispatch_kernel.settings import Settings

from . import Result, p50
from .core import inc

_US = 1e6
_BROKEN = {"container": {"docker_host": "unix:///nonexistent/dispatch-bench.sock"}}


def _turns(calls: list, rounds: int, per_round: int) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in calls]
    clock = time.perf_counter
    for _ in range(rounds):
        for index, call in enumerate(calls):
            for _ in range(per_round):
                start = clock()
                call()
                samples[index].append(clock() - start)
    return samples


def driver_choice(quick: bool = False) -> list[Result]:
    """Per-run cost of the split/failover choice: warm run p50 with and without it, and pick()."""
    rounds, per_round = (5, 60) if quick else (40, 250)
    home = Path(tempfile.mkdtemp(prefix="dk-bench-"))
    client = dk.connect(settings=Settings(home=home, plugin_options=_BROKEN))
    try:
        single = client.deploy(inc, name="single", min_workers=1, max_workers=1)
        several = client.deploy(inc, name="several", drivers=["container", "local"], min_workers=1, max_workers=1)
        if single(1) != 2 or several(1) != 2:
            raise RuntimeError("driver_choice: inc(1) did not return 2")
        for _ in range(200):  # warm both
            single(1), several(1)
        alone, chosen = _turns([lambda: single(1), lambda: several(1)], rounds, per_round)
        last = client.list_runs(function="several", limit=1)[0]
        if last.driver != "local":
            raise RuntimeError(f"driver_choice: a run went to {last.driver!r}, not local")
    finally:
        client.close()
        shutil.rmtree(home, ignore_errors=True)

    choice = DriverChoice("split", [DriverEntry("a", None, 0.9), DriverEntry("b", None, 0.1)])  # type: ignore[arg-type]
    count = 20000 if quick else 500000
    draw = random.random
    start = time.perf_counter()
    for _ in range(count):
        draw()
    baseline = (time.perf_counter() - start) / count
    pick = choice.pick
    start = time.perf_counter()
    for _ in range(count):
        pick()
    picked = (time.perf_counter() - start) / count

    mid, base = p50(chosen) * _US, p50(alone) * _US
    overhead = mid - base
    return [
        Result("driver_choice", "p50 µs, failover fn(1)", mid, "single-driver fn(1)", base,
               "overhead <= 5 µs", overhead <= 5,
               f"{rounds} rounds of {per_round} warm runs each, taking turns; overhead {overhead:+.2f} µs"),
        Result("driver_choice", "µs per split pick()", picked * _US, "random.random()", baseline * _US,
               "<= 5 µs", picked * _US <= 5, f"{count} picks of a 0.9/0.1 split"),
    ]


BENCHMARKS = {"driver_choice": driver_choice}


def _post(connection: Any, body: bytes) -> Any:
    from dispatch_kernel.runtime.protocol import load_answer
    from dispatch_kernel.runtime.server import PICKLE_TYPE

    connection.request("POST", "/", body, {"Content-Type": PICKLE_TYPE})
    return load_answer(connection.getresponse().read())


def _first_answer(port: int, body: bytes) -> Any:
    """Poll a starting server until a run answers; its open connection and the answer."""
    import http.client

    deadline = time.monotonic() + 120
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            return connection, _post(connection, body)
        except (OSError, http.client.HTTPException):
            connection.close()
            if time.monotonic() > deadline:
                raise RuntimeError("kube_play: the server never answered") from None
            time.sleep(0.02)


def kube_play(quick: bool = False) -> list[Result]:
    """The same image started two ways, measured the same way: a function's Deployment and
    Service (the kubernetes driver's manifests) run by `podman kube play`, and one container
    started by the container driver (start_container). From the image in the engine to the
    first answer, and a warm run p50: one pickled job POSTed over HTTP keep-alive to the
    server in the pod and to the one in the container, taking turns."""
    import copy

    import yaml

    from dispatch_kernel.drivers.kubernetes_manifests import Placement, manifests
    from dispatch_kernel.images.services import free_port
    from dispatch_kernel.model import Function
    from dispatch_kernel.packaging import package
    from dispatch_kernel.runtime.protocol import Job

    from .images import _settings, _stack

    iterations, rounds, per_round = (2, 5, 40) if quick else (5, 20, 100)
    body = pickle.dumps([Job("bench", (1,), {}, None, True)], protocol=5)
    with _stack() as stack:
        home = stack.root / "home"
        pod_start, container_start, pod_warm, container_warm = [], [], [], []
        with dk.connect(settings=_settings(stack, home, driver="container")) as client:
            driver = client.dispatch.drivers.get("container")
            source = package(inc)
            for i in range(iterations):
                function = Function(name=f"play-{i}", handler=source.handler, convention=source.convention,
                                    requirements=source.requirements, digest=f"{i:064x}",
                                    scaling={"min_workers": 1, "max_workers": 1})
                image = client.dispatch.images.function_image(function, source)
                stack.podman.podman("pull", "--tls-verify=false", image.reference, timeout=300)
                deployment, service, _ = manifests(function, image.reference, Placement())
                port = free_port()  # published on 127.0.0.1, as a node's Service proxy would route
                deployment = copy.deepcopy(deployment)
                deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(
                    hostPort=port, hostIP="127.0.0.1")
                document = stack.root / f"play-{i}.yaml"
                document.write_text(yaml.safe_dump_all([deployment, service]))
                worker = None
                pod = container = None
                try:
                    start = time.perf_counter()
                    stack.podman.podman("kube", "play", "--tls-verify=false", str(document), timeout=300)
                    pod, answer = _first_answer(port, body)
                    pod_start.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    worker = driver.start_container(function, image.reference, function.digest, True)
                    container, answer_too = _first_answer(worker.port, body)
                    container_start.append(time.perf_counter() - start)
                    if answer[0].error is not None or answer_too[0].error is not None:
                        raise RuntimeError(f"kube_play: a run failed: {answer[0].error or answer_too[0].error}")
                    if i == 0:
                        for _ in range(50):
                            _post(pod, body), _post(container, body)
                        pod_warm, container_warm = _turns([lambda: _post(pod, body), lambda: _post(container, body)],
                                                          rounds, per_round)
                finally:
                    for connection in (pod, container):
                        if connection is not None:
                            connection.close()
                    if worker is not None:
                        worker.kill()
                    stack.podman.podman("kube", "down", str(document), check=False, timeout=120)
    return [
        Result("kube_play", "image→answer p50 ms", p50(pod_start) * 1e3, "container driver image→answer",
               p50(container_start) * 1e3,
               note=f"{iterations} images, each in the engine first; kube play vs start_container, then a first run"),
        Result("kube_play", "warm p50 µs", p50(pod_warm) * _US, "container driver warm", p50(container_warm) * _US,
               note=f"both: one pickled job over HTTP keep-alive to the runtime server; {rounds} rounds of "
                    f"{per_round} runs each, taking turns"),
    ]


BENCHMARKS["kube_play"] = kube_play
