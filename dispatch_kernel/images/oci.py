"""OCI images assembled in Python, without a daemon, and pushed to a registry.

A function image is its base image's layers (reused by reference: mounted, never re-uploaded)
plus three of ours, each a gzipped tar that is content-addressed and cached on disk:

1. requirements: wheels resolved for the base's Python version and platform by
   `uv pip install --target` into /dispatch/site;
2. runtime: dispatch_kernel.runtime (the HTTP server) under /dispatch/runtime, shared by all;
3. code: /dispatch/function.pkl, the function itself: the only layer a code change touches.

Tars are reproducible (sorted entries, zero times and owners, gzip without a timestamp) and the
config has no creation time, so an unchanged rebuild yields the same manifest digest and pushes
nothing; a code-only rebuild uploads the code layer, the config and the manifest.

The Python base image for users without one is made from a debootstrapped Debian bookworm
rootfs (`debian_python_base`), cached on disk and pushed once.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import DeployError
from ..settings import Settings
from .base import Environment, ImageBuilder, Progress
from .registry import Reference, RegistryClient

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PYTHON_LABEL = "org.dispatch.python"  # the base image's Python version, "3.11"
# On images made by create_image: their requirements (JSON list); the runtime is in them too.
REQUIREMENTS_LABEL = "org.dispatch.requirements"
SITE = "dispatch/site"
RUNTIME = "dispatch/runtime"
FUNCTION_FILE = "dispatch/function.pkl"
DEBIAN_BASE_REPOSITORY = "dispatch/python"
DEBIAN_LABEL = "org.dispatch.debian"  # "bookworm" on the base made by debian_python_base
_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # dispatch_kernel/


def default_cache() -> Path:
    """$DISPATCH_CACHE, else ~/.cache/dispatch-kernel: what is expensive and shareable (rootfs)."""
    if os.environ.get("DISPATCH_CACHE"):
        return Path(os.environ["DISPATCH_CACHE"]).expanduser()
    return Path.home() / ".cache" / "dispatch-kernel"


@dataclass(frozen=True)
class Layer:
    """A layer blob in the cache: its compressed digest and size, and its uncompressed diff_id."""

    digest: str
    size: int
    diff_id: str
    path: Path

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": LAYER, "digest": self.digest, "size": self.size}

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, "diff_id": self.diff_id}


@dataclass
class BuiltImage:
    """What a build produced and what it had to send."""

    reference: str  # registry/repository@sha256:...
    digest: str
    layers: list[str]  # the digests of the layers we added (not the base's)
    pushed: list[tuple[str, str, int]] = field(default_factory=list)  # (what, digest, size)
    seconds: float = 0.0

    @property
    def pushed_layers(self) -> list[str]:
        return [digest for what, digest, _ in self.pushed if what == "layer"]


class _Hashing:
    """A write-only stream that hashes and counts what passes through it."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)

    def flush(self) -> None:
        pass


class BlobCache:
    """Layers under <root>/blobs/sha256/, and an index from a build key to a layer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "index").mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def lookup(self, key: str) -> Layer | None:
        entry = self.root / "index" / f"{key}.json"
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):
            return None
        layer = Layer(data["digest"], data["size"], data["diff_id"], self.path(data["digest"]))
        return layer if layer.path.exists() else None

    def remember(self, key: str, layer: Layer) -> None:
        entry = self.root / "index" / f"{key}.json"
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(layer.to_json()))
        tmp.rename(entry)

    def write_layer(self, fill, level: int = 6) -> Layer:
        """A layer from `fill(tar)`, which adds the members; reproducible for equal input."""
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "blobs", prefix=".layer-")
        with os.fdopen(fd, "wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=level) as gz:
                plain = _Hashing(gz)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    fill(tar)
        digest = f"sha256:{compressed.hash.hexdigest()}"
        path = self.path(digest)
        os.replace(tmp_name, path)
        return Layer(digest, compressed.size, f"sha256:{plain.hash.hexdigest()}", path)

    def files_layer(self, files: dict[str, bytes], key: str | None = None) -> Layer:
        """A layer of regular files (path -> content), with their parent directories."""
        if key:
            cached = self.lookup(key)
            if cached is not None:
                return cached

        def fill(tar: tarfile.TarFile) -> None:
            dirs = sorted({str(Path(name).parents[i]) for name in files
                           for i in range(len(Path(name).parents) - 1)})
            for name in dirs:
                tar.addfile(_member(name, tarfile.DIRTYPE, 0o755))
            for name in sorted(files):
                data = files[name]
                tar.addfile(_member(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))

        layer = self.write_layer(fill, level=6)
        if key:
            self.remember(key, layer)
        return layer

    def tree_layer(self, directory: Path, prefix: str, key: str, level: int = 6,
                   exclude: tuple[str, ...] = ()) -> Layer:
        """A layer of a directory tree placed at `prefix` ("" for the root), cached under `key`."""
        cached = self.lookup(key)
        if cached is not None:
            return cached

        def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            relative = info.name[len(prefix) + 1:] if prefix else info.name
            if any(relative.startswith(e + "/") for e in exclude):  # contents only: keep the dir
                return None
            info.mtime = 0 if prefix else info.mtime
            if prefix:
                info.uid = info.gid = 0
                info.uname = info.gname = ""
            return info

        def fill(tar: tarfile.TarFile) -> None:
            if prefix:
                parts = Path(prefix).parts
                for i in range(1, len(parts)):
                    tar.addfile(_member("/".join(parts[:i]), tarfile.DIRTYPE, 0o755))
            for entry in sorted(os.listdir(directory)):
                arcname = f"{prefix}/{entry}" if prefix else entry
                _add_sorted(tar, directory / entry, arcname, normalize)

        layer = self.write_layer(fill, level=level)
        self.remember(key, layer)
        return layer


def _add_sorted(tar: tarfile.TarFile, path: Path, arcname: str, normalize) -> None:
    info = tar.gettarinfo(str(path), arcname)
    info = normalize(info) if info is not None else None
    if info is None:
        return
    if info.isreg():
        with open(path, "rb") as file:
            tar.addfile(info, file)
    else:
        tar.addfile(info)
    if info.isdir() and not path.is_symlink():
        for entry in sorted(os.listdir(path)):
            _add_sorted(tar, path / entry, f"{arcname}/{entry}", normalize)


def _member(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    return info


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def repository_name(*parts: str) -> str:
    """A valid repository path component from free text (lowercase, [a-z0-9._-])."""
    cleaned = []
    for part in parts:
        text = re.sub(r"[^a-z0-9._-]+", "-", part.lower()).strip("._-")
        cleaned.append(re.sub(r"[._-]{2,}", "-", text) or "x")
    return "/".join(cleaned)


class ImageAssembler:
    """Puts an image together from a base image and layers, and pushes what is missing."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self._others: dict[str, RegistryClient] = {}

    def client(self, address: str) -> RegistryClient:
        """The client of the registry at `address` (HTTPS unless it is on this machine)."""
        if address == self.registry.address:
            return self.registry
        if address not in self._others:
            local = address.split(":")[0] in ("127.0.0.1", "localhost")
            self._others[address] = RegistryClient(address, secure=not local)
        return self._others[address]

    def base(self, reference: Reference) -> tuple[dict[str, Any], dict[str, Any]]:
        """The base image's manifest and config."""
        client = self.client(reference.registry)
        manifest, _ = client.get_manifest(reference.repository, reference.ref)
        if "layers" not in manifest:
            raise DeployError(f"the base image {reference} is not a single-platform image manifest")
        config = json.loads(client.get_blob(reference.repository, manifest["config"]["digest"]))
        return manifest, config

    def _bring_base_layer(self, repository: str, digest: str, base: Reference) -> None:
        """Make a base layer present in `repository`: mounted within a registry, else copied."""
        if base.registry == self.registry.address:
            if self.registry.mount_blob(repository, digest, base.repository):
                return
            raise DeployError(f"the base layer {digest} could not be mounted from {base}")
        data = self.client(base.registry).get_blob(base.repository, digest)
        self.registry.push_blob(repository, digest, data, what="base layer")

    def push(self, target: Reference, layers: list[Layer], *, base: Reference | None = None,
             env: dict[str, str] | None = None, entrypoint: list[str] | None = None,
             cmd: list[str] | None = None, labels: dict[str, str] | None = None,
             workdir: str | None = None, exposed: list[str] = (), progress: Progress | None = None,
             ) -> BuiltImage:
        """Assemble base + layers into `target` (a tag) and push blobs and manifest as needed."""
        started = time.perf_counter()
        say = progress or (lambda line: None)
        mark = len(self.registry.pushed)
        repository = target.repository
        if base is not None:
            base_manifest, base_config = self.base(base)
        else:
            base_manifest, base_config = {"layers": []}, {
                "architecture": _architecture(), "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
        config = json.loads(json.dumps(base_config))
        config.pop("created", None)
        run_config = config.setdefault("config", {}) or {}
        config["config"] = run_config
        merged_env = dict(item.split("=", 1) for item in run_config.get("Env") or [] if "=" in item)
        merged_env.update(env or {})
        run_config["Env"] = [f"{k}={v}" for k, v in merged_env.items()]
        if entrypoint is not None:
            run_config["Entrypoint"] = entrypoint
            run_config["Cmd"] = cmd
        elif cmd is not None:
            run_config["Cmd"] = cmd
        if workdir:
            run_config["WorkingDir"] = workdir
        if labels:
            run_config["Labels"] = {**(run_config.get("Labels") or {}), **labels}
        if exposed:
            run_config["ExposedPorts"] = {**(run_config.get("ExposedPorts") or {}), **{p: {} for p in exposed}}
        config["rootfs"] = {"type": "layers",
                            "diff_ids": list(config.get("rootfs", {}).get("diff_ids", [])) + [l.diff_id for l in layers]}
        history = list(config.get("history") or [])
        history += [{"created_by": "dispatch-kernel oci builder", "comment": l.digest} for l in layers]
        config["history"] = history
        config_bytes = _canonical(config)
        config_digest = _digest(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [
                {"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"]}
                for d in base_manifest["layers"]
            ] + [l.descriptor() for l in layers],
        }
        manifest_bytes = _canonical(manifest)
        digest = _digest(manifest_bytes)
        pinned = str(Reference(target.registry, repository, target.tag, digest))
        if self.registry.manifest_digest(repository, target.tag) == digest:
            say(f"{target}: up to date ({digest[:19]})")
            return BuiltImage(pinned, digest, [l.digest for l in layers], [],
                              time.perf_counter() - started)
        for descriptor in base_manifest["layers"]:
            if base is not None and not self.registry.has_blob(repository, descriptor["digest"]):
                self._bring_base_layer(repository, descriptor["digest"], base)
        for layer in layers:
            if not self.registry.has_blob(repository, layer.digest):
                say(f"pushing layer {layer.digest[:19]} ({layer.size / 1024:.0f} KiB)")
                self.registry.push_blob(repository, layer.digest, layer.path, what="layer")
        if not self.registry.has_blob(repository, config_digest):
            self.registry.push_blob(repository, config_digest, config_bytes, what="config")
        self.registry.put_manifest(repository, target.tag, manifest_bytes, MANIFEST)
        say(f"pushed {pinned}")
        return BuiltImage(pinned, digest, [l.digest for l in layers], self.registry.pushed[mark:],
                          time.perf_counter() - started)


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _uv_platform() -> str:
    machine = platform.machine().lower()
    return f"{machine}-unknown-linux-gnu"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _runtime_files() -> dict[str, bytes]:
    """The image's copy of dispatch_kernel: the runtime package under a stub top-level package
    (the real __init__ imports the client, which needs more than the standard library)."""
    files = {f"{RUNTIME}/dispatch_kernel/__init__.py": b'"""dispatch-kernel runtime (image copy)."""\n'}
    for file in sorted((_PACKAGE_DIR / "runtime").glob("*.py")):
        files[f"{RUNTIME}/dispatch_kernel/runtime/{file.name}"] = file.read_bytes()
    return files


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 .sources or a sources.list line)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in match.group(1):
                return match.group(1)
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\b", text, re.M):
            return match.group(1)
    return "http://deb.debian.org/debian"


def debian_rootfs(cache: Path, progress: Progress | None = None) -> Path:
    """A Debian bookworm minbase rootfs with python3, debootstrapped once into the cache."""
    say = progress or (lambda line: None)
    target = cache / "rootfs" / "bookworm-python3"
    with _locked(cache / "rootfs" / "bookworm-python3.lock"):
        if (target / "usr" / "bin" / "python3").exists():
            return target
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise DeployError("debootstrap is not installed (make system-deps installs it)")
        staging = target.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        mirror = apt_mirror()
        say(f"debootstrap bookworm with python3 from {mirror} (once; cached in {target})")
        process = subprocess.run(
            [debootstrap, "--variant=minbase", "--include=python3", "bookworm", str(staging), mirror],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if process.returncode != 0:
            raise DeployError(f"debootstrap failed:\n{process.stdout[-2000:]}")
        staging.rename(target)
        return target


def debian_python_base(registry: RegistryClient, cache: Path | None = None,
                       progress: Progress | None = None) -> Reference:
    """Push (once) a Python base image made from a debootstrapped Debian bookworm rootfs."""
    cache = cache or default_cache()
    rootfs = debian_rootfs(cache, progress)
    version = next(p.name[len("python"):] for p in sorted((rootfs / "usr" / "bin").glob("python3.*"))
                   if re.fullmatch(r"python3\.\d+", p.name))
    target = Reference(registry.address, DEBIAN_BASE_REPOSITORY, f"{version}-bookworm")
    blobs = BlobCache(cache / "oci")
    with _locked(cache / "oci" / "debian-base.lock"):
        if progress:
            progress("packing the Debian rootfs into a layer (once)")
        # What debian:bookworm-slim leaves out too: apt's lists and caches, docs, man pages.
        layer = blobs.tree_layer(rootfs, "", key=f"debian-bookworm-python{version}-slim", level=1,
                                 exclude=("dev", "proc", "sys", "run", "tmp", "var/cache/apt",
                                          "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                                          "usr/share/locale", "usr/share/info"))
    ImageAssembler(registry).push(
        target, [layer],
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        cmd=["python3"], labels={PYTHON_LABEL: version, DEBIAN_LABEL: "bookworm"}, progress=progress)
    return target


_RUNTIME_ENV = {"PYTHONPATH": f"/{SITE}:/{RUNTIME}", "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PORT": "8080"}
_ENTRYPOINT = ["python3", "-m", "dispatch_kernel.runtime.server"]


def _requirement_name(text: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(text).name)


class OciBuilder(ImageBuilder):
    """Function images on a Python base image, pushed to `settings.registry`."""

    name = "oci"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if not settings.registry:
            raise DeployError("the oci image builder needs a registry (Settings.registry or DISPATCH_REGISTRY)")
        self.registry = RegistryClient(settings.registry)
        self.assembler = ImageAssembler(self.registry)
        self.blobs = BlobCache(settings.home / "oci")
        self._base: Reference | None = Reference.parse(settings.base_image) if settings.base_image else None
        self._labels: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ base

    def base(self, progress: Progress | None = None) -> Reference:
        """The base image: Settings.base_image, else the Debian Python base (made once)."""
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
        key = "runtime-" + hashlib.sha256(_canonical({k: hashlib.sha256(v).hexdigest() for k, v in files.items()})).hexdigest()[:24]
        return self.blobs.files_layer(files, key=key)

    def code_layer(self, function_file: bytes) -> Layer:
        key = "code-" + hashlib.sha256(function_file).hexdigest()[:32]
        return self.blobs.files_layer({FUNCTION_FILE: function_file}, key=key)

    # ------------------------------------------------------------------ images

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
        """Debian packages as a layer of their own (only on the Debian base: see system.py)."""
        from .system import debian_packages_layer

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


__all__ = ["BlobCache", "BuiltImage", "ImageAssembler", "Layer", "OciBuilder", "debian_python_base",
           "repository_name"]
