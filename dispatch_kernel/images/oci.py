"""OciBuilder: OCI images assembled in Python, without a daemon, and pushed to a registry.

A function image is its base image's layers (reused by reference: mounted, never re-uploaded)
plus three of ours, each a gzipped tar that is content-addressed and cached on disk (layers.py):

1. requirements: wheels resolved for the base's Python version and platform by
   `uv pip install --target` into /dispatch/site;
2. runtime: dispatch_kernel.runtime (the HTTP server) under /dispatch/runtime, shared by all;
3. code: /dispatch/function.pkl, the function itself: the only layer a code change touches.

An unchanged rebuild yields the same manifest digest and pushes nothing; a code-only rebuild
uploads the code layer, the config and the manifest. Images made by create_image (a base plus
system packages and requirements) are built here too; functions are then built on them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ..model import DeployError, Function
from ..packaging import FunctionSource
from ..runtime.server import function_file
from ..settings import Settings
from .assembly import PYTHON_LABEL, BuiltImage, ImageAssembler
from .base import Environment, ImageBuilder, Progress
from .debian import DEBIAN_LABEL, debian_packages_layer, debian_python_base
from .layers import BlobCache, Layer, canonical_json, default_cache
from .registry import Reference, RegistryClient

# On images made by create_image: their requirements (JSON list); the runtime is in them too.
REQUIREMENTS_LABEL = "org.dispatch.requirements"
SITE = "dispatch/site"
RUNTIME = "dispatch/runtime"
FUNCTION_FILE = "dispatch/function.pkl"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # dispatch_kernel/
_RUNTIME_ENV = {"PYTHONPATH": f"/{SITE}:/{RUNTIME}", "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PORT": "8080"}
_ENTRYPOINT = ["python3", "-m", "dispatch_kernel.runtime.server"]


def repository_name(*parts: str) -> str:
    """A valid repository path component from free text (lowercase, [a-z0-9._-])."""
    cleaned = []
    for part in parts:
        text = re.sub(r"[^a-z0-9._-]+", "-", part.lower()).strip("._-")
        cleaned.append(re.sub(r"[._-]{2,}", "-", text) or "x")
    return "/".join(cleaned)


def _runtime_files() -> dict[str, bytes]:
    """The image's copy of dispatch_kernel: the runtime package under a stub top-level package
    (the real __init__ imports the client, which needs more than the standard library)."""
    files = {f"{RUNTIME}/dispatch_kernel/__init__.py": b'"""dispatch-kernel runtime (image copy)."""\n'
                                                     b"from .runtime.response import Response\n"}
    for file in sorted((_PACKAGE_DIR / "runtime").glob("*.py")):
        files[f"{RUNTIME}/dispatch_kernel/runtime/{file.name}"] = file.read_bytes()
    return files


def _uv_platform() -> str:
    machine = platform.machine().lower()
    return f"{machine}-unknown-linux-gnu"


def _requirement_name(text: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(text).name)


class OciBuilder(ImageBuilder):
    """Function images on a Python base image, pushed to a registry.

    Options (`Settings.plugin_options["oci"]`): `registry`, the `host:port` images are pushed
    to (else DISPATCH_REGISTRY), and `base_image`, the Python base (else DISPATCH_BASE_IMAGE,
    else the Debian base made here).
    """

    name = "oci"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        options = settings.options(self.name)
        self.address = str(options.get("registry") or os.environ.get("DISPATCH_REGISTRY", ""))
        if not self.address:
            raise DeployError('the oci image builder needs a registry (plugin_options["oci"]["registry"] '
                              "or DISPATCH_REGISTRY)")
        base = str(options.get("base_image") or os.environ.get("DISPATCH_BASE_IMAGE", ""))
        self.registry = RegistryClient(self.address)
        self.assembler = ImageAssembler(self.registry)
        self.blobs = BlobCache(settings.home / "oci")
        self._base: Reference | None = Reference.parse(base) if base else None
        self._labels: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ base

    def base(self, progress: Progress | None = None) -> Reference:
        """The base image: the `base_image` option, else the Debian Python base (made once)."""
        with self._lock:
            if self._base is None:
                self._base = debian_python_base(self.registry, progress=progress)
            return self._base

    def labels(self, base: Reference) -> dict[str, str]:
        """The labels of a base image's config."""
        key = str(base)
        if key not in self._labels:
            _, config = self.assembler.base(base)
            self._labels[key] = (config.get("config") or {}).get("Labels") or {}
        return self._labels[key]

    def python_version(self, progress: Progress | None = None, base: Reference | None = None) -> str:
        """The Python version inside `base` (the default base when None), as its label says."""
        labels = self.labels(base or self.base(progress))
        return labels.get(PYTHON_LABEL) or f"{sys.version_info[0]}.{sys.version_info[1]}"

    # ------------------------------------------------------------------ layers

    def requirements_layer(self, requirements: list[str], progress: Progress | None = None,
                           python: str | None = None, runtime: bool = True) -> Layer:
        """Wheels for the base's Python and platform, installed into /dispatch/site (with what
        the runtime itself imports, unless `runtime` is False)."""
        import importlib.metadata

        wanted = set(requirements)
        if runtime:
            wanted.add(f"cloudpickle=={importlib.metadata.version('cloudpickle')}")
        wanted = sorted(wanted)
        python = python or self.python_version(progress)
        key = "requirements-" + hashlib.sha256("\n".join([python, _uv_platform(), *wanted]).encode()).hexdigest()[:24]
        cached = self.blobs.lookup(key)
        if cached is not None:
            return cached
        from uv import find_uv_bin

        say = progress or (lambda line: None)
        say(f"resolving wheels for Python {python} ({_uv_platform()}): {' '.join(wanted)}")
        with tempfile.TemporaryDirectory(prefix="dispatch-site-") as tmp:
            process = subprocess.run(
                [find_uv_bin(), "pip", "install", "--quiet", "--target", tmp, "--python-version", python,
                 "--python-platform", _uv_platform(), "--only-binary", ":all:", "--no-compile", *wanted],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
            if process.returncode != 0:
                raise DeployError(f"resolving the requirements failed:\n{process.stdout[-2000:]}")
            return self.blobs.tree_layer(Path(tmp), SITE, key=key)

    def runtime_layer(self) -> Layer:
        files = _runtime_files()
        key = "runtime-" + hashlib.sha256(canonical_json({k: hashlib.sha256(v).hexdigest() for k, v in files.items()})).hexdigest()[:24]
        return self.blobs.files_layer(files, key=key)

    def code_layer(self, function_file: bytes) -> Layer:
        key = "code-" + hashlib.sha256(function_file).hexdigest()[:32]
        return self.blobs.files_layer({FUNCTION_FILE: function_file}, key=key)

    # ------------------------------------------------------------------ images

    def function_image(self, function: Function, source: FunctionSource, progress: Progress | None = None,
                       base: str | None = None) -> BuiltImage:
        """The image of one function, pushed as dispatch/functions/<org>/<name>: on `base` (an
        image made by create_image, as a reference) when given, else on the base image."""
        code = function_file(source.payload, name=function.name, convention=source.convention,
                             origins=source.origins, sources=source.sources, code=source.code,
                             filename=source.filename, handler=source.handler)
        repository = repository_name("dispatch", "functions", function.org, function.name)
        return self.build(repository, code, list(source.requirements), progress, base=base or None)

    def build(self, repository: str, function_file: bytes, requirements: list[str],
              progress: Progress | None = None, tag: str = "latest",
              base: str | Reference | None = None) -> BuiltImage:
        """A runnable function image, pushed: base + requirements + runtime + code.

        On an image made by `build_environment` (create_image), only the requirements it
        lacks become a layer, and none when it has them all.
        """
        base_ref = Reference.parse(base) if isinstance(base, str) else (base or self.base(progress))
        labels = self.labels(base_ref)
        python = self.python_version(progress, base_ref)
        layers = []
        if REQUIREMENTS_LABEL in labels:
            present = {_requirement_name(r) for r in json.loads(labels[REQUIREMENTS_LABEL])}
            extra = [r for r in requirements if _requirement_name(r) not in present]
            if extra:
                layers.append(self.requirements_layer(extra, progress, python, runtime=False))
        else:
            layers.append(self.requirements_layer(requirements, progress, python))
        layers += [self.runtime_layer(), self.code_layer(function_file)]
        return self.assembler.push(
            Reference(self.registry.address, repository, tag), layers, base=base_ref,
            env=_RUNTIME_ENV, entrypoint=_ENTRYPOINT, cmd=[f"/{FUNCTION_FILE}"],
            workdir="/dispatch", exposed=["8080/tcp"], progress=progress)

    def build_environment(self, repository: str, base: str | Reference, requirements: list[str],
                          system_packages: list[str] = (), progress: Progress | None = None,
                          tag: str = "latest") -> BuiltImage:
        """An image for functions to be built on (create_image): base + system packages +
        requirements + runtime, labelled with its requirements and Python version."""
        base_ref = Reference.parse(base) if isinstance(base, str) else base
        python = self.python_version(progress, base_ref)
        requirements = sorted(set(requirements))
        layers = []
        if system_packages:
            layers.append(self.system_layer(base_ref, sorted(set(system_packages)), progress))
        layers += [self.requirements_layer(requirements, progress, python), self.runtime_layer()]
        return self.assembler.push(
            Reference(self.registry.address, repository, tag), layers, base=base_ref,
            env=_RUNTIME_ENV, entrypoint=_ENTRYPOINT, cmd=[f"/{FUNCTION_FILE}"], workdir="/dispatch",
            exposed=["8080/tcp"], labels={REQUIREMENTS_LABEL: json.dumps(requirements), PYTHON_LABEL: python},
            progress=progress)

    def system_layer(self, base: Reference, packages: list[str], progress: Progress | None = None) -> Layer:
        """Debian packages as a layer of their own (only on the Debian base: see debian.py)."""
        if self.labels(base).get(DEBIAN_LABEL) != "bookworm":
            raise DeployError(f"system packages need a Debian bookworm base made here; {base} is not one")
        return debian_packages_layer(self.blobs, default_cache(), packages, progress)

    def prepare(self, requirements: list[str], progress: Progress | None = None) -> Environment:
        """An environment image (base + requirements + runtime) for these requirements.

        Its `python` is the interpreter inside the image: such environments are for drivers
        that run images (container), not for local worker processes.
        """
        requirements = sorted(set(requirements))
        layers = [self.requirements_layer(requirements, progress), self.runtime_layer()]
        key = hashlib.sha256("\n".join(l.digest for l in layers).encode()).hexdigest()[:20]
        built = self.assembler.push(
            Reference(self.registry.address, "dispatch/environments", key), layers, base=self.base(progress),
            env={"PYTHONPATH": f"/{SITE}:/{RUNTIME}", "PYTHONUNBUFFERED": "1"}, progress=progress)
        return Environment(built.reference, "/usr/bin/python3", tuple(requirements))


__all__ = ["FUNCTION_FILE", "PYTHON_LABEL", "REQUIREMENTS_LABEL", "OciBuilder", "repository_name"]
