"""What choosing among a function's drivers costs per run (drivers/choice.py).

`driver_choice`: warm `fn(1)` of a function with a failover list (["local", "container"],
the container driver pointed at an engine that does not exist, so every run is chosen and goes
to local) beside the same warm `fn(1)` of a single-driver function, the two taking turns so
that load from elsewhere falls on both alike; and one `DriverChoice.pick()` on a two-driver
split against `random.random()`, the draw it cannot do without.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

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


def kube_play(quick: bool = False) -> list[Result]:
    """A function's Deployment and Service (the kubernetes driver's manifests) run by `podman
    kube play`: deploy to first answer (image built and pushed, pod started, run answered) and
    a warm run p50 sent to the pod, beside the container driver's deploy to first answer and
    warm run in the same run."""
    import copy
    import http.client
    import pickle

    import yaml

    from dispatch_kernel.drivers.kubernetes_manifests import Placement, manifests
    from dispatch_kernel.images.services import free_port
    from dispatch_kernel.model import Function
    from dispatch_kernel.packaging import package
    from dispatch_kernel.runtime.protocol import Job, load_answer
    from dispatch_kernel.runtime.server import PICKLE_TYPE

    from .images import _settings, _stack

    iterations, warm_runs = (2, 200) if quick else (5, 2000)
    with _stack() as stack:
        home = stack.root / "home"
        to_answer, container_answer, pod_warm, container_warm = [], [], [], []
        with dk.connect(settings=_settings(stack, home, driver="container")) as client:
            source = package(inc)
            body = pickle.dumps([Job("bench", (1,), {}, None, True)], protocol=5)
            for i in range(iterations):
                start = time.perf_counter()
                function = Function(name=f"play-{i}", handler=source.handler, convention=source.convention,
                                    requirements=source.requirements, digest=f"{i:064x}",
                                    scaling={"min_workers": 1, "max_workers": 1})
                image = client.dispatch.images.function_image(function, source)
                deployment, service, _ = manifests(function, image.reference, Placement())
                port = free_port()  # published on 127.0.0.1, as a node's Service proxy would route
                deployment = copy.deepcopy(deployment)
                deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(
                    hostPort=port, hostIP="127.0.0.1")
                document = stack.root / f"play-{i}.yaml"
                document.write_text(yaml.safe_dump_all([deployment, service]))
                stack.podman.podman("kube", "play", "--tls-verify=false", str(document), timeout=300)
                try:
                    connection = None
                    deadline = time.monotonic() + 120
                    while True:
                        try:
                            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                            connection.request("POST", "/", body, {"Content-Type": PICKLE_TYPE})
                            answer = load_answer(connection.getresponse().read())
                            break
                        except (OSError, http.client.HTTPException):
                            connection.close()
                            if time.monotonic() > deadline:
                                raise RuntimeError("kube_play: the pod never answered") from None
                            time.sleep(0.02)
                    to_answer.append(time.perf_counter() - start)
                    if answer[0].error is not None:
                        raise RuntimeError(f"kube_play: the run failed: {answer[0].error}")
                    if i == 0:
                        for n in range(50 + warm_runs):
                            started = time.perf_counter()
                            connection.request("POST", "/", body, {"Content-Type": PICKLE_TYPE})
                            load_answer(connection.getresponse().read())
                            if n >= 50:
                                pod_warm.append(time.perf_counter() - started)
                    connection.close()
                finally:
                    stack.podman.podman("kube", "down", str(document), check=False, timeout=120)
                start = time.perf_counter()
                fn = client.deploy(inc, name=f"beside-{i}", min_workers=1, max_workers=1)
                if fn.spawn(1).wait(120).output != 2:
                    raise RuntimeError("kube_play: the container driver's run failed")
                container_answer.append(time.perf_counter() - start)
                if i == 0:
                    for n in range(50 + warm_runs):
                        started = time.perf_counter()
                        fn(1)
                        if n >= 50:
                            container_warm.append(time.perf_counter() - started)
                fn.delete()
    return [
        Result("kube_play", "deploy→answer p50 ms", p50(to_answer) * 1e3, "container driver deploy→answer",
               p50(container_answer) * 1e3, note=f"{iterations} functions each; kube play: build, play, first answer"),
        Result("kube_play", "warm p50 µs", p50(pod_warm) * _US, "container driver warm fn(1)",
               p50(container_warm) * _US,
               note="kube play: a pickled job over HTTP keep-alive to the pod; container: fn(1) through the core"),
    ]


BENCHMARKS["kube_play"] = kube_play
