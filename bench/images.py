"""Images and containers: daemonless image builds against `podman build`, container start and
warm runs against the local driver.

Everything runs against services started here and stopped afterwards: Debian's docker-registry
on 127.0.0.1 and podman's Docker-compatible service, configured for this sandbox (runc,
explicit ulimits). The Debian Python base image is debootstrapped once (cached on disk) and
pushed to the fresh registry before anything is timed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dispatch_kernel as dk

from . import Result, p50

_MS = 1e3


def inc(x: int) -> int:
    """The trivial function: the cost measured is all overhead."""
    return x + 1


@dataclass
class _Stack:
    root: Path
    registry: object  # LocalRegistry
    podman: object  # PodmanService
    base: str


@contextmanager
def _stack() -> Iterator[_Stack]:
    from dispatch_kernel.images.debian import debian_python_base
    from dispatch_kernel.images.registry import RegistryClient
    from dispatch_kernel.images.services import LocalRegistry, PodmanService

    root = Path(tempfile.mkdtemp(prefix="dk-bench-images-"))
    registry = LocalRegistry(root / "registry").start()
    try:
        podman = PodmanService(root / "podman", insecure_registries=[registry.address]).start()
        try:
            client = RegistryClient(registry.address)
            base = str(debian_python_base(client))
            client.close()
            podman.podman("pull", base)
            yield _Stack(root, registry, podman, base)
        finally:
            podman.stop()
    finally:
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


def _code(fn, salt: int = 0) -> bytes:
    from dispatch_kernel.packaging import package
    from dispatch_kernel.runtime.server import function_file

    source = package(fn)
    # A code change, as small as one: the salt changes the function file and nothing else.
    return function_file(source.payload, name=f"{source.handler}", convention=source.convention,
                         origins={("salt", salt): "bench"})


def _settings(stack: _Stack, home: Path, **more):
    from dispatch_kernel.settings import Settings

    return Settings(home=home, plugin_options={
        "oci": {"registry": stack.registry.address, "base_image": stack.base},
        "container": {"docker_host": stack.podman.url, "engine_options": stack.podman.engine_options()}}, **more)


def image_build(quick: bool = False) -> list[Result]:
    """Building and pushing a function image: cold (empty layer cache, new repository) and with
    only the code changed, against `podman build` + `podman push` of an equivalent
    Containerfile (the same files COPY'd onto the same base), cold (--no-cache) and cached."""
    from dispatch_kernel.images.oci import OciBuilder

    iterations = 3 if quick else 8
    with _stack() as stack:
        ours_cold, ours_code, pushed_code = [], [], []
        for i in range(iterations):
            home = stack.root / f"home-{i}"
            builder = OciBuilder(_settings(stack, home))
            repository = f"bench/ours-{i}"
            start = time.perf_counter()
            builder.build(repository, _code(inc, 0), [])
            ours_cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            built = builder.build(repository, _code(inc, i + 1), [])
            ours_code.append(time.perf_counter() - start)
            pushed_code.append(sum(size for what, _, size in built.pushed if what == "layer"))
            builder.registry.close()
        # The same content for podman: the requirements site, the runtime and the code.
        context = stack.root / "context"
        layers = {layer: builder.blobs.path(digest) for layer, digest in (
            ("site", builder.requirements_layer([]).digest), ("runtime", builder.runtime_layer().digest))}
        for name, blob in layers.items():
            (context / name).mkdir(parents=True, exist_ok=True)
            shutil.unpack_archive(str(blob), str(context / name), format="gztar")
        (context / "Containerfile").write_text(
            f"FROM {stack.base}\n"
            "COPY site/ /\nCOPY runtime/ /\nCOPY function.pkl /dispatch/function.pkl\n"
            "ENV PYTHONPATH=/dispatch/site:/dispatch/runtime PYTHONUNBUFFERED=1 PORT=8080\n"
            "WORKDIR /dispatch\nEXPOSE 8080\n"
            'ENTRYPOINT ["python3", "-m", "dispatch_kernel.runtime.server"]\nCMD ["/dispatch/function.pkl"]\n')
        theirs_cold, theirs_code = [], []
        for i in range(iterations):
            tag = f"{stack.registry.address}/bench/podman-{i}:latest"

            def build_and_push(*flags: str) -> float:
                start = time.perf_counter()
                stack.podman.podman("build", "--quiet", *flags, "-t", tag, str(context), timeout=300)
                stack.podman.podman("push", "--quiet", "--tls-verify=false", tag, timeout=300)
                return time.perf_counter() - start

            (context / "function.pkl").write_bytes(_code(inc, 0))
            theirs_cold.append(build_and_push("--no-cache"))
            (context / "function.pkl").write_bytes(_code(inc, i + 1))
            theirs_code.append(build_and_push())
    return [
        Result("image_build", "cold p50 ms", p50(ours_cold) * _MS, "podman build --no-cache + push",
               p50(theirs_cold) * _MS, "faster than podman", p50(ours_cold) < p50(theirs_cold),
               note="cold: empty layer cache (requirements resolved by uv, its cache warm) and a new "
                    "repository; podman gets the same files pre-resolved"),
        Result("image_build", "code-only p50 ms", p50(ours_code) * _MS, "podman build (cached) + push",
               p50(theirs_code) * _MS, "<= 200 ms", p50(ours_code) <= 0.2,
               note=f"code-only rebuild pushed {p50(pushed_code) / 1024:.1f} KiB of layers (one layer)"),
    ]


def container_coldstart(quick: bool = False) -> list[Result]:
    """Deploy to first answer through the container driver (image built and pushed, pulled,
    container started, health checked, run answered) and the first run alone after a deploy
    with min_workers=0, against `podman run --rm <base> python3 -c pass` from the CLI."""
    iterations = 3 if quick else 8
    with _stack() as stack:
        baseline = []
        for _ in range(iterations):
            start = time.perf_counter()
            stack.podman.podman("run", "--rm", "--network", "host", stack.base, "python3", "-c", "pass")
            baseline.append(time.perf_counter() - start)
        home = stack.root / "home"
        to_answer, first_run = [], []
        with dk.connect(settings=_settings(stack, home, driver="container")) as client:
            for i in range(iterations):
                start = time.perf_counter()
                fn = client.deploy(inc, name=f"cold-{i}")
                deployed = time.perf_counter()
                run = fn.spawn(1).wait(120)
                end = time.perf_counter()
                assert run.status == "SUCCEEDED" and run.cold_start, run
                to_answer.append(end - start)
                first_run.append(end - deployed)
    return [
        Result("container_coldstart", "deploy→answer p50 ms", p50(to_answer) * _MS,
               "podman run --rm base python3 -c pass", p50(baseline) * _MS),
        Result("container_coldstart", "first run p50 ms", p50(first_run) * _MS,
               "podman run --rm base python3 -c pass", p50(baseline) * _MS,
               note="first run: container start + runtime import + health check + the run"),
    ]


def container_warm(quick: bool = False) -> list[Result]:
    """A warm run (min_workers=1) through the container driver against the local driver."""
    iterations = 200 if quick else 2000
    with _stack() as stack:
        home = stack.root / "home"
        with dk.connect(settings=_settings(stack, home, driver="container")) as client:
            container_fn = client.deploy(inc, name="warm-container", min_workers=1, max_workers=1)
            local_fn = client.deploy(inc, name="warm-local", min_workers=1, max_workers=1, driver="local")
            samples = {}
            for name, fn in (("container", container_fn), ("local", local_fn)):
                for _ in range(50):
                    fn(1)
                times = []
                for _ in range(iterations):
                    start = time.perf_counter()
                    fn(1)
                    times.append(time.perf_counter() - start)
                samples[name] = times
    return [
        Result("container_warm", "p50 µs", p50(samples["container"]) * 1e6, "local driver warm run",
               p50(samples["local"]) * 1e6,
               note="container: a pickled job over HTTP keep-alive to the runtime server on 127.0.0.1"),
    ]


BENCHMARKS = {
    "image_build": image_build,
    "container_coldstart": container_coldstart,
    "container_warm": container_warm,
}
