"""VMware's vCenter simulator for the tests: built once from main.go, cached by source hash.

`build()` compiles main.go against Debian's golang-github-vmware-govmomi-dev (GOPATH mode, no
network); `Vcsim` runs it on 127.0.0.1 and stops it (closing its stdin ends it, so it cannot
outlive the tests).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).parent
GOPATH = "/usr/share/gocode"
GOVMOMI = Path(GOPATH) / "src/github.com/vmware/govmomi"


class Unavailable(RuntimeError):
    """The simulator cannot be built here (no Go toolchain or no govmomi sources)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dispatch-kernel-tests"


def build() -> Path:
    """The simulator binary, built when main.go (or govmomi) changed since the cached build."""
    go = shutil.which("go")
    if go is None or not GOVMOMI.is_dir():
        raise Unavailable("the vCenter simulator needs golang-go and golang-github-vmware-govmomi-dev "
                          "(`make env` installs them)")
    version = (GOVMOMI / "go.mod").stat().st_mtime_ns if (GOVMOMI / "go.mod").exists() else 0
    key = hashlib.sha256((HERE / "main.go").read_bytes() + str(version).encode()).hexdigest()[:16]
    binary = cache_dir() / f"vcsim-{key}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH,
               GOCACHE=str(cache_dir() / "go-build"), CGO_ENABLED="0")
    partial = binary.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run([go, "build", "-o", str(partial), "main.go"], cwd=HERE, env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"building the vCenter simulator failed:\n{result.stderr[-4000:]}")
    partial.replace(binary)
    return binary


class Vcsim:
    """A running simulator: `url` (with the default login), `host`, `port`, `user`, `password`."""

    def __init__(self, binary: Path, lifetime: str = "20m") -> None:
        self.process = subprocess.Popen([str(binary), "-lifetime", lifetime], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        line = self.process.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the vCenter simulator did not start (it printed {line!r})")
        self.url = line
        parsed = urlparse(line)
        self.host, self.port = parsed.hostname, parsed.port
        self.user, self.password = parsed.username, parsed.password
        self.plain_url = f"http://{self.host}:{self.port}/sdk"

    def connect(self):
        from pyVim.connect import SmartConnect

        return SmartConnect(host=self.host, port=self.port, user=self.user, pwd=self.password,
                            protocol="http")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def virtual_machines(si) -> list:
    """The simulator's virtual machines (pyVmomi objects of the connection `si`), by name."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    return sorted(view.view, key=lambda vm: vm.name)


def power_off(vm) -> None:
    """Power `vm` off and wait for the task (the event a vCenter source turns into a run)."""
    from pyVim.task import WaitForTask

    WaitForTask(vm.PowerOffVM_Task())
