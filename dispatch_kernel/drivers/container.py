"""The container driver: each function runs in containers from its own OCI image.

The driver runs images (`runs = Runs.IMAGE`): the image manager builds the function's image
without a daemon (images/oci.py: the base image's layers, a requirements layer, the runtime and
a small code layer) and pushes it to the registry; this driver pulls it and starts containers
through the Docker Engine API with the `docker` package, so the same code drives Docker and
podman's Docker-compatible service (`podman system service`).

Containers are this driver's workers and behave as the local driver's do: the pool logic is
drivers/pooled.py's WorkerPool (warm containers reused, started on demand up to max_workers,
min_workers kept, idle ones removed after the idle timeout), the engine enforces the memory and
CPU limits, a run that outlives its timeout gets its container killed, and a container that dies
fails only the run it was serving. Each container runs dispatch_kernel.runtime.server; runs
travel as pickled jobs over HTTP on 127.0.0.1.

Options (`Settings.plugin_options["container"]`): `docker_host`, the engine's API (else
DOCKER_HOST, else docker's defaults), and `engine_options`, keywords of docker's
`containers.run` for every container (e.g. runtime="runc" and explicit ulimits for podman in a
sandbox). By default containers use the host network with a port of their own, bound to
127.0.0.1.
"""

from __future__ import annotations

import logging
import pickle
import signal
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..images.base import FunctionImage, Progress
from ..model import DeployError, Function
from ..packaging import FunctionSource
from ..runtime.protocol import Job, Outcome, load_answer
from ..runtime.server import PICKLE_TYPE
from ..settings import Settings
from .base import OutcomeSink, Runs
from .pooled import PooledDriver, WorkerPool, failed_outcome, settle_batch

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds for a new container to answer /healthz
_EXIT_REPORT_TIMEOUT = 5.0
_LABEL = "org.dispatch.driver"


class ContainerStartError(DeployError):
    """A function's container did not start or did not answer."""


class _Ports:
    """Free ports of 127.0.0.1 for containers on the host network, none handed out twice in a
    row: a port is free when asked for, but not yet bound by the container it was given to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: deque[int] = deque(maxlen=4096)

    def take(self) -> int:
        with self._lock:
            while True:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = sock.getsockname()[1]
                if port not in self._recent:
                    self._recent.append(port)
                    return port


class _Connection:
    """Lean HTTP/1.1 keep-alive to one runtime server: a request leaves in one send (Nagle off),
    the answer is read by its Content-Length (the server always sends one). http.client's
    header parsing would cost more than the rest of a warm run."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self._buffer = bytearray()

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = PICKLE_TYPE,
                timeout: float | None = None) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = bytearray()
        sock, buffer = self.sock, self._buffer
        sock.settimeout(timeout)
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._recv(65536)
        lines = bytes(buffer[:end]).split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        del buffer[:end + 4]
        while len(buffer) < length:
            buffer += self._recv(max(65536, length - len(buffer)))
        data = bytes(buffer[:length])
        del buffer[:length]
        return status, data

    def _recv(self, size: int) -> bytes:
        chunk = self.sock.recv(size)
        if not chunk:
            raise ConnectionResetError("the runtime server closed the connection")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class ContainerWorker:
    """One container of a function, seen from the host: where it listens and what it runs."""

    __slots__ = ("container", "port", "digest", "last_used", "cold", "_connection")

    def __init__(self, container: Any, port: int, digest: str, cold: bool) -> None:
        self.container = container
        self.port = port
        self.digest = digest
        self.last_used = time.monotonic()
        self.cold = cold
        self._connection: _Connection | None = None

    @property
    def connection(self) -> _Connection:
        if self._connection is None:
            self._connection = _Connection(self.port)
        return self._connection

    def drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def why_ended(self, memory: int | None) -> str:
        """Why the container stopped, in words (waits briefly for the engine to notice)."""
        try:
            status = self.container.wait(timeout=_EXIT_REPORT_TIMEOUT).get("StatusCode")
            self.container.reload()
            state = self.container.attrs.get("State") or {}
        except Exception:
            return "the container stopped answering"
        if state.get("OOMKilled"):
            limit = f" of {memory / (1 << 20):.0f} MiB" if memory else ""
            return f"the container was killed by the engine for exceeding its memory limit{limit}"
        code = state.get("ExitCode", status)
        if code is not None and code > 128:
            try:
                name = signal.Signals(code - 128).name
            except ValueError:
                name = f"signal {code - 128}"
            if code - 128 == signal.SIGKILL and memory:
                # The kernel's OOM killer inside the container's cgroup (the engine flags only
                # the init process, so OOMKilled is often not set).
                return (f"the container's process was killed by SIGKILL: out of memory "
                        f"(over its memory limit of {memory / (1 << 20):.0f} MiB?)")
            hint = " (out of memory?)" if code - 128 == signal.SIGKILL else ""
            return f"the container's process was killed by {name}{hint}"
        return f"the container exited with code {code}"

    def kill(self) -> None:
        """Remove the container now."""
        self.drop_connection()
        try:
            self.container.remove(force=True)
        except Exception as exc:  # already gone, or the engine went away
            log.debug("removing container %s: %s", self.container.id[:12], exc)

    def stop(self) -> None:
        """End an idle container (removal is immediate: it holds no run)."""
        self.kill()

    def interrupt(self) -> None:
        """SIGKILL the container's process, leaving its connection to the thread using it."""
        try:
            self.container.kill()
        except Exception as exc:  # already gone, or the engine went away
            log.debug("killing container %s: %s", self.container.id[:12], exc)


class ContainerPool(WorkerPool):
    """The local driver's pool logic with containers for workers; `_load` is the image."""

    def __init__(self, driver: ContainerDriver, function: Function, image: str) -> None:
        self.driver = driver
        super().__init__(function, image)

    def _start_worker(self, load: str, digest: str, cold: bool) -> ContainerWorker:
        return self.driver.start_container(self.function, load, digest, cold)


class ContainerDriver(PooledDriver):
    """Functions in containers through the Docker Engine API (Docker or podman)."""

    name = "container"
    runs = Runs.IMAGE
    reap_interval = 0.5

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        try:
            import docker
        except ImportError as exc:
            raise DeployError("the container driver needs the docker package "
                              "(pip install 'dispatch-kernel[containers]')") from exc
        docker_host = self.options.get("docker_host")
        if docker_host:
            self.client = docker.DockerClient(base_url=docker_host, timeout=120)
        else:
            self.client = docker.from_env(timeout=120)
        self.engine_options: dict[str, Any] = dict(self.options.get("engine_options") or {})
        self.id = uuid.uuid4().hex[:12]
        self._pulled: set[str] = set()
        self._ports = _Ports()

    # ------------------------------------------------------------------ images

    def _pull(self, reference: str, progress: Progress | None) -> None:
        if reference in self._pulled:
            return
        if progress:
            progress(f"pulling {reference}")
        try:
            self.client.images.pull(reference)
        except Exception as exc:
            raise DeployError(f"the engine could not pull {reference}: {exc}") from exc
        self._pulled.add(reference)

    # ------------------------------------------------------------------ containers

    def start_container(self, function: Function, image: str, digest: str, cold: bool) -> ContainerWorker:
        """Start one container of `function` and wait until it answers."""
        options = dict(self.engine_options)
        host_network = options.get("network_mode", "host") == "host"
        memory = function.resources.get("memory")
        cpu = function.resources.get("cpu")
        port = self._ports.take() if host_network else 8080
        environment = {"PORT": str(port), "HOST": "127.0.0.1" if host_network else "0.0.0.0"}
        if memory:
            environment["DISPATCH_MEMORY"] = str(int(memory))
        kwargs: dict[str, Any] = {
            "detach": True,
            "init": True,  # signals reach the server and a self-inflicted SIGKILL is reported
            "environment": environment,
            "labels": {_LABEL: self.id, "org.dispatch.function": function.name,
                       "org.dispatch.org": function.org},
            "name": f"dispatch-{function.name.lower()}-{uuid.uuid4().hex[:8]}",
        }
        if host_network:
            kwargs["network_mode"] = "host"
        else:
            kwargs["ports"] = {"8080/tcp": ("127.0.0.1", None)}
        if memory:
            kwargs["mem_limit"] = int(memory)
            kwargs["memswap_limit"] = int(memory)
        if cpu:
            kwargs["nano_cpus"] = int(float(cpu) * 1e9)
        kwargs.update(options)
        environment.update(options.get("environment") or {})
        kwargs["environment"] = environment
        try:
            container = self.client.containers.run(image, **kwargs)
        except Exception as exc:
            raise ContainerStartError(f"the engine could not start {image}: {exc}") from exc
        if not host_network:
            container.reload()
            port = int(container.ports["8080/tcp"][0]["HostPort"])
        worker = ContainerWorker(container, port, digest, cold)
        try:
            self._wait_healthy(worker)
        except BaseException:
            worker.kill()
            raise
        return worker

    def _wait_healthy(self, worker: ContainerWorker) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        checks = 0
        while time.monotonic() < deadline:
            try:
                status, body = worker.connection.request("GET", "/healthz", timeout=2)
            except (OSError, ValueError, IndexError):
                worker.drop_connection()
            else:
                if status == 200:
                    return
                raise ContainerStartError(f"the function's container is unhealthy: {body.decode(errors='replace')}")
            checks += 1
            if checks % 20 == 0:  # now and then, ask the engine whether it is still running
                worker.container.reload()
                if worker.container.status in ("exited", "dead"):
                    break
            time.sleep(0.005 if checks < 200 else 0.05)
        try:
            logs = worker.container.logs(tail=20).decode(errors="replace")
        except Exception:
            logs = ""
        raise ContainerStartError(f"the function's container did not answer within {START_TIMEOUT:g}s: {logs}")

    # ------------------------------------------------------------------ FaaSDriver

    def deploy(self, function: Function, source: FunctionSource, artifact: FunctionImage,
               progress: Progress | None = None) -> None:
        self._pull(artifact.reference, progress)
        key = (function.org, function.name)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = ContainerPool(self, function, artifact.reference)
            else:
                pool.configure(function, artifact.reference)
        pool.warm_up()

    def is_deployed(self, function: Function) -> bool:
        pool = self._pools.get((function.org, function.name))
        return pool is not None and pool.digest == function.digest and not self._closed.is_set()

    def _batch(self, pending: list[Job], function: Function) -> list[Job]:
        # With a timeout, one run per request: the deadline is then exactly the run's.
        return pending if function.timeout is None else pending[:1]

    def _run_batch(self, pool: ContainerPool, worker: ContainerWorker, jobs: list[Job], function: Function,
                   on_done: OutcomeSink | None) -> tuple[list[Outcome], bool]:
        timeout, memory = function.timeout, function.resources.get("memory")
        sent = time.monotonic()
        body = pickle.dumps(jobs, protocol=5)
        try:
            # Never retried: the jobs may have started, and a run happens at most once.
            status, data = worker.connection.request("POST", "/", body, timeout=timeout)
        except TimeoutError:
            worker.kill()
            return [failed_outcome(jobs[0], sent, f"the run timed out after {timeout:g}s and its container "
                                           "was killed")], False
        except (OSError, ValueError, IndexError):
            worker.drop_connection()
            cause = worker.why_ended(memory)
            worker.kill()
            return [failed_outcome(jobs[0], sent, f"{cause} during the run")], False
        if status != 200:
            worker.kill()
            return [failed_outcome(jobs[0], sent, f"the function's container answered {status}: "
                                           f"{data[:200].decode(errors='replace')}")], False
        try:  # the container runs the function's code: read only outcomes from it
            done: list[Outcome] = load_answer(data)
        except Exception as exc:
            worker.kill()
            return [failed_outcome(jobs[0], sent, f"the function's container answered something other "
                                           f"than outcomes: {exc}")], False
        return done, settle_batch(worker, done)

    def close(self) -> None:
        self._close_pools()
        # Whatever is left (containers busy a moment ago): every container this driver started.
        try:
            leftovers = self.client.containers.list(all=True, filters={"label": f"{_LABEL}={self.id}"})
        except Exception:
            leftovers = []
        if leftovers:
            with ThreadPoolExecutor(8) as removers:
                list(removers.map(lambda c: _remove(c), leftovers))
        self.client.close()


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except Exception:
        pass
