"""A real `jupyter dispatch` server in a subprocess, for tests that need one outside their own
event loop (the synchronous REST client, the CLI). It binds 127.0.0.1 only, on a free port, with
pytest-jupyter's awkward base URL, and is stopped (then killed if it must be) by the test."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dispatch_kernel.images.services import free_port

BASE_URL = "/a%40b/"
# The other extensions installed beside us only slow the start down.
OTHERS_OFF = [f"--ServerApp.jpserver_extensions={name}=False"
              for name in ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals")]


class LiveServer:
    """`jupyter dispatch` with its own home; `.url` (base URL included) and `.token`."""

    def __init__(self, home: Path, workdir: Path, *, extra: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}{BASE_URL}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        command = [
            os.path.join(os.path.dirname(sys.executable), "jupyter-dispatch"),
            "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.base_url={BASE_URL}",
            f"--ServerApp.root_dir={workdir}", *OTHERS_OFF,
            f"--DispatchApp.home={home}", *(extra or []),
        ]
        environment = {**os.environ, "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), **(env or {})}
        environment.pop("DISPATCH_URL", None)
        environment.pop("DISPATCH_TOKEN", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=environment, cwd=workdir)
        self._wait_ready(60.0)

    def _wait_ready(self, budget: float) -> None:
        deadline = time.monotonic() + budget
        request = urllib.request.Request(self.url + "dispatch/v1/openapi.json",
                                         headers={"Authorization": f"token {self.token}"})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer within {budget:g}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM (Jupyter stops its extensions and kernels), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class ThreadedServer:
    """A real Jupyter ServerApp with only the dispatch extension, served by an event loop on a
    thread of this process: a fresh server per test in a fraction of a second, for synchronous
    clients that must not share the test's own loop."""

    def __init__(self, home: Path, workdir: Path, **dispatch_config: object) -> None:
        import asyncio
        import threading

        from jupyter_server.serverapp import ServerApp
        from traitlets.config import Config

        self.home = home
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}{BASE_URL}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = Config()
        config.ServerApp.jpserver_extensions = {"dispatch_kernel.server": True}
        config.IdentityProvider.token = self.token
        config.DispatchApp.home = str(home)
        config.DispatchApp.export_env = False  # the test process is no kernel of this server
        for key, value in dispatch_config.items():
            setattr(config.DispatchApp, key, value)
        self.app = ServerApp(config=config, ip="127.0.0.1", port=self.port, port_retries=0,
                             base_url=BASE_URL, open_browser=False, allow_root=True,
                             root_dir=str(workdir), log_level="WARN")
        self.app.init_signal = lambda: None  # signals belong to the main thread
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.app.initialize(argv=[], find_extensions=False)
                self.app.start_app()
            except BaseException as exc:  # reported to the constructor
                failure.append(exc)
                started.set()
                return
            self.loop.call_soon(started.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="jupyter-server", daemon=True)
        self.thread.start()
        if not started.wait(60):
            raise RuntimeError("the threaded server did not start within 60s")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Stop the extension (the core closes), the HTTP server and the loop."""
        import asyncio

        if not self.thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.app._cleanup(), self.loop)
        future.result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.app.clear_instance()


@contextmanager
def connected(kind: str, home: Path, workdir: Path) -> Iterator[Any]:
    """A client of the core in `home`: "local" (in this process) or "rest" (dk.connect to a
    ThreadedServer on that home), for tests that run over both."""
    import dispatch_kernel as dk

    if kind == "local":
        with dk.connect(home=home) as client:
            yield client
        return
    server = ThreadedServer(home, workdir)
    try:
        with dk.connect(server.url, token=server.token) as client:
            yield client
    finally:
        server.stop()
