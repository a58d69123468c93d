"""Local stand-ins for what a cluster provides: an OCI registry and a container engine API.

For tests, benchmarks and users without a registry: Debian's docker-registry on 127.0.0.1 on a
free port with its own config and storage, and podman's Docker-compatible service on a private
unix socket with its own containers.conf (engine options such as runc and explicit ulimits),
registries.conf (the local registry over plain HTTP) and storage. Each is a context manager
that stops what it started; starting waits a bounded time and says why it failed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from ..model import DispatchError

START_TIMEOUT = 30.0


class ServiceError(DispatchError):
    """A local service is not installed or did not start."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _wait(ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path,
          timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if ready():
            return
        time.sleep(0.05)
    stop_process(process)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise ServiceError(f"{what} did not start within {timeout:g}s:\n{tail}")


class LocalRegistry:
    """Debian's docker-registry serving `root`/data on 127.0.0.1:<free port>."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> LocalRegistry:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise ServiceError("docker-registry is not installed (make system-deps installs it)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n  secret: dispatch-kernel-local\n"
        )
        log = self.root / "registry.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL)
        from .registry import RegistryClient

        client = RegistryClient(self.address, timeout=2)
        try:
            _wait(client.ping, self.process, "docker-registry", log)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class PodmanService:
    """`podman system service` on `root`/podman.sock, configured for a sandbox and a local registry."""

    def __init__(self, root: Path, insecure_registries: list[str] = (), runtime: str = "runc",
                 ulimits: tuple[str, ...] = ("nofile=1024:1024", "nproc=1024:1024")) -> None:
        self.root = Path(root)
        self.socket = self.root / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.insecure_registries = list(insecure_registries)
        self.runtime = runtime
        self.ulimits = ulimits
        self.env = {
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.root / "registries.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
        }
        self.process: subprocess.Popen | None = None

    def engine_options(self) -> dict:
        """The same engine options as keywords of docker's containers.run (for Settings)."""
        ulimits = []
        for item in self.ulimits:
            name, _, values = item.partition("=")
            soft, _, hard = values.partition(":")
            ulimits.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        return {"runtime": self.runtime, "ulimits": ulimits}

    def start(self) -> PodmanService:
        if shutil.which("podman") is None or shutil.which(self.runtime) is None:
            raise ServiceError(f"podman or {self.runtime} is not installed (make system-deps installs them)")
        self.root.mkdir(parents=True, exist_ok=True)
        ulimits = ", ".join(f'"{u}"' for u in self.ulimits)
        (self.root / "containers.conf").write_text(
            f'[containers]\ndefault_ulimits = [{ulimits}]\n[engine]\nruntime = "{self.runtime}"\n'
            # A private tmp_dir: stop()'s `system reset` removes it, and the default one
            # (/run/libpod) is shared by every other podman service on the machine.
            f'tmp_dir = "{self.root / "tmp"}"\n')
        registries = "".join(f'[[registry]]\nlocation = "{r}"\ninsecure = true\n' for r in self.insecure_registries)
        (self.root / "registries.conf").write_text(f"unqualified-search-registries = []\n{registries}")
        (self.root / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.root / "storage"}"\n'
            f'runroot = "{self.root / "run"}"\n')
        log = self.root / "service.log"
        with open(log, "wb") as out:
            # In its own directory: conmon leaves a file named "oom" in its working directory
            # when a container is killed for its memory limit.
            self.process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.url], env={**os.environ, **self.env},
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        _wait(self._answers, self.process, "podman system service", log)
        return self

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(2)
                client.connect(str(self.socket))
                client.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b"OK" in client.recv(4096)
        except OSError:
            return False

    def podman(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run a podman command against the same configuration and storage."""
        return subprocess.run(["podman", *args], env={**os.environ, **self.env}, capture_output=True,
                              text=True, timeout=timeout, check=check)

    def stop(self) -> None:
        """Remove every container, stop the service and reset its private storage."""
        if self.process is None:
            return
        self.podman("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        stop_process(self.process)
        self.podman("system", "reset", "--force", check=False, timeout=120)
        self.process = None

    def __enter__(self) -> PodmanService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


__all__ = ["LocalRegistry", "PodmanService", "ServiceError", "free_port"]
