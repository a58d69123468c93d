"""A real JupyterLab on 127.0.0.1 and a headless Chromium to drive it.

Chromium and its WebDriver are Debian's (`make system-deps` installs them): selenium is handed
both paths, so selenium-manager never looks for, or downloads, a browser of its own. Under
CI=true a missing browser fails the test; elsewhere it is skipped with the command that fixes it.
Every wait is bounded, and the server, its kernels and the browser are stopped whatever happens.
"""

from __future__ import annotations

import json
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch_kernel.images.services import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-proxy-server",
    # The network is 127.0.0.1 only: any other host name resolves to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1400,1100",
)
SERVER_START_TIMEOUT = 60  # seconds until /api/status answers
SERVER_STOP_TIMEOUT = 20  # seconds for a graceful shutdown before SIGTERM, then SIGKILL

# Nothing from the internet and no state from the user's own Jupyter: JupyterLab's news feed,
# update check and PyPI extension manager are off; the app object is exposed so the test can read
# the notebook model (outputs, execution state) beside what the page renders.
LAB_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",
        "expose_app_in_browser": True,
    },
    "ServerApp": {"open_browser": False, "port_retries": 0, "allow_root": True},  # CI runs as root
}
# Every cell stays in the DOM (JupyterLab 4 otherwise virtualizes long notebooks), so the page
# shows what the test inspects, and the announcements toast does not ask about news.
LAB_USER_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}
LAB_PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def _missing(reason: str) -> None:
    """A missing browser fails under CI (it must never pass by skipping) and skips elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run; `make test` installs it)")
    pytest.skip(f"{reason}; run `make system-deps` (or `make test`) to install it")


@pytest.fixture(scope="session")
def chromium() -> tuple[Path, Path]:
    """Debian's chromium and chromedriver, checked to exist before anything is started."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            _missing(f"{path} not found: Debian's {package} package is not installed")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _missing("selenium is not installed in this environment (the `test` extra has it)")
    return CHROMIUM, CHROMEDRIVER


# Straight to 127.0.0.1, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class JupyterLab:
    """A running JupyterLab server: its address, token, root directory and DISPATCH_HOME."""

    url: str
    token: str
    root: Path
    home: Path
    log: Path
    process: subprocess.Popen

    def page(self, path: str) -> str:
        """The URL that opens `path` (relative to the root) in JupyterLab, logged in."""
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=b"" if method != "GET" else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with _opener.open(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _processes_with(variable: str) -> list[int]:
    """Pids of the processes (this one aside) whose environment holds `variable` ("NAME=value")."""
    needle = variable.encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass  # gone already, or not ours to read
    return pids


def _processes_using(home: Path) -> list[int]:
    """Pids of the processes whose environment has DISPATCH_HOME=`home`: the server, its
    kernels and the kernels' workers, all started by this fixture (the path is unique to it)."""
    return _processes_with(f"DISPATCH_HOME={home}")


def _stop(lab: JupyterLab) -> list[int]:
    """Shut the server and its kernels down; returns the pids that had to be killed."""
    try:
        lab.api("/api/shutdown", method="POST")  # shuts every kernel down, then the server
    except (OSError, urllib.error.URLError):
        pass  # not answering: the signals below stop it
    try:
        lab.process.wait(SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        lab.process.terminate()
        try:
            lab.process.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            lab.process.kill()
            lab.process.wait(SERVER_STOP_TIMEOUT)
    # Kernels run in sessions of their own; whatever outlived the shutdown is ended by pid.
    deadline = time.monotonic() + 5
    while (left := _processes_using(lab.home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


@pytest.fixture
def jupyterlab(request: pytest.FixtureRequest, tmp_path: Path, chromium: tuple[Path, Path]) -> Iterator[JupyterLab]:
    """JupyterLab on 127.0.0.1 (a free port, token auth) serving an empty temp root.

    Its environment sets DISPATCH_HOME to a temp dir, so every kernel it starts (and every
    worker those start) uses it; Jupyter's config, data, runtime and IPython dirs are temp dirs
    too, so nothing from the user's own setup leaks in. A test may add server config through
    indirect parametrization (`{"ServerApp": {...}}`, merged per section).
    """
    root, home, jupyter = tmp_path / "root", tmp_path / "home", tmp_path / "jupyter"
    root.mkdir()
    extra = getattr(request, "param", None) or {}
    config = {section: {**values, **extra.get(section, {})} for section, values in LAB_CONFIG.items()}
    config.update({section: values for section, values in extra.items() if section not in config})
    _write_json(jupyter / "config" / "jupyter_server_config.json", config)
    _write_json(jupyter / "config" / "labconfig" / "page_config.json", LAB_PAGE_CONFIG)
    for name, settings in LAB_USER_SETTINGS.items():
        _write_json(jupyter / "lab-settings" / name, settings)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPATCH_SECRET_KEY", "JUPYTER_TOKEN")}
    env.update(
        DISPATCH_HOME=str(home),
        JUPYTER_CONFIG_DIR=str(jupyter / "config"),
        JUPYTER_DATA_DIR=str(jupyter / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
        IPYTHONDIR=str(jupyter / "ipython"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             f"--LabApp.user_settings_dir={jupyter / 'lab-settings'}",
             f"--LabApp.workspaces_dir={jupyter / 'lab-workspaces'}"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, root, home, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{lab.log_tail()}")
            try:
                lab.api("/api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT}s:\n{lab.log_tail()}")
                time.sleep(0.25)
        yield lab
    finally:
        _stop(lab)


@contextmanager
def chromium_session(folder: Path, chromium: tuple[Path, Path]) -> Iterator[Any]:
    """Headless Chromium with a fresh profile in `folder`, driven through Debian's chromedriver;
    quit at the end whatever happened."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = Options()
    options.binary_location = str(binary)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = folder / "chromium-profile"
    profile.mkdir(parents=True)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=str(driver_path), log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(tmp_path: Path, chromium: tuple[Path, Path]) -> Iterator[Any]:
    """Headless Chromium with a fresh profile, driven through Debian's chromedriver."""
    with chromium_session(tmp_path, chromium) as driver:
        yield driver
