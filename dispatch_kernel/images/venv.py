"""Virtual environments built with uv, content-addressed and shared between functions.

An environment's address is a hash of the Python version and the sorted requirements, so two
functions that need the same things share one. When the caller's own environment already has
every requirement at a matching version, it serves directly and nothing is built.
"""

from __future__ import annotations

import fcntl
import hashlib
import sys
from contextlib import contextmanager
from pathlib import Path

from ..model import DeployError, InvalidRequestError
from ..runtime.forkserver import HOST_ENVIRONMENT
from ..settings import Settings
from .base import Environment, ImageBuilder, Progress

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # dispatch_kernel/


def host_satisfies(requirements: list[str]) -> bool:
    """True when this interpreter's installed distributions meet every requirement."""
    if not requirements:
        return True
    # Imported here: a deploy with no requirements (the first cell of a notebook, often)
    # should not pay ~40 ms for the requirement parser and the metadata reader.
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            raise InvalidRequestError(f"not a valid requirement: {text!r}") from None
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if requirement.url:
            return False
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if not requirement.specifier.contains(version, prereleases=True):
            return False
    return True


def _runtime_requirements() -> list[str]:
    # What the worker itself imports besides the standard library.
    import importlib.metadata

    return [f"cloudpickle=={importlib.metadata.version('cloudpickle')}"]


class VenvBuilder(ImageBuilder):
    """Environments as uv-built virtual environments under `<home>/envs/`."""

    name = "venv"

    def __init__(self, settings: Settings) -> None:
        self.root = settings.home / "envs"

    def prepare(self, requirements: list[str], progress: Progress | None = None) -> Environment:
        requirements = sorted(set(requirements))
        if host_satisfies(requirements):
            return Environment(HOST_ENVIRONMENT, sys.executable, tuple(requirements))
        wanted = requirements + _runtime_requirements()
        key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:20]
        path = self.root / key
        python = path / "bin" / "python"
        with self._locked(key):
            if not (path / ".ready").exists():
                self._build(path, wanted, progress or (lambda line: None))
            self._install_runtime(path)
        return Environment(key, str(python), tuple(requirements))

    @contextmanager
    def _locked(self, key: str):
        # Two processes asking for the same environment build it once.
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _build(self, path: Path, requirements: list[str], progress: Progress) -> None:
        import shutil  # here, not at the top: a first deploy on the host's interpreter needs none

        from uv import find_uv_bin

        uv = find_uv_bin()
        shutil.rmtree(path, ignore_errors=True)
        progress(f"building environment {path.name} for: {' '.join(requirements)}")
        self._run([uv, "venv", "--quiet", "--python", sys.executable, str(path)], progress)
        self._run([uv, "pip", "install", "--python", str(path / "bin" / "python"), *requirements],
                  progress)
        (path / ".ready").touch()
        progress(f"environment {path.name} ready")

    @staticmethod
    def _run(command: list[str], progress: Progress) -> None:
        import subprocess  # here: a first deploy on the host's interpreter runs no command

        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True)
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            progress(line.rstrip())
        if process.wait() != 0:
            tail = "\n".join(lines[-15:])
            raise DeployError(f"building the environment failed ({command[1]} {command[2]}):\n{tail}")

    def _install_runtime(self, path: Path) -> None:
        """Make this version of dispatch_kernel importable in the environment (a .pth file)."""
        import shutil

        digest = hashlib.sha256()
        files = sorted(p for p in _PACKAGE_DIR.rglob("*.py"))
        for file in files:
            digest.update(str(file.relative_to(_PACKAGE_DIR)).encode())
            digest.update(file.read_bytes())
        runtime = self.root.parent / "runtime" / digest.hexdigest()[:16]
        if not (runtime / "dispatch_kernel").exists():
            staging = runtime.with_suffix(".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            for file in files:
                target = staging / "dispatch_kernel" / file.relative_to(_PACKAGE_DIR)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
            try:
                staging.rename(runtime)
            except OSError:  # another process put the same runtime in place first
                shutil.rmtree(staging, ignore_errors=True)
        # Same interpreter version as ours (uv venv --python sys.executable), so same layout.
        purelib = path / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
        pth = purelib / "dispatch_kernel_runtime.pth"
        if not pth.exists() or pth.read_text().strip() != str(runtime):
            pth.write_text(f"{runtime}\n")

