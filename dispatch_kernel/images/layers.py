"""Layers: content-addressed, reproducible tar.gz blobs in an on-disk cache.

A layer is written once (sorted entries, zero times and owners where we choose them, gzip without
a timestamp), so equal input yields the same digest and an unchanged rebuild pushes nothing.
BlobCache keeps the blobs and an index from a build key (what went into a layer) to the layer.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


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
        """The layer's entry in an image manifest."""
        return {"mediaType": LAYER, "digest": self.digest, "size": self.size}

    def to_json(self) -> dict[str, Any]:
        """What the cache's index keeps of it."""
        return {"digest": self.digest, "size": self.size, "diff_id": self.diff_id}


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
                tar.addfile(tar_member(name, tarfile.DIRTYPE, 0o755))
            for name in sorted(files):
                data = files[name]
                tar.addfile(tar_member(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))

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
                    tar.addfile(tar_member("/".join(parts[:i]), tarfile.DIRTYPE, 0o755))
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


def tar_member(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    """A tar header with the given type, mode and size, time zero (reproducible)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    return info


def digest_of(data: bytes) -> str:
    """The OCI digest (sha256:...) of `data`."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def canonical_json(value: Any) -> bytes:
    """JSON bytes that are equal for equal values (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


__all__ = ["LAYER", "BlobCache", "Layer", "canonical_json", "default_cache", "digest_of", "file_lock",
           "tar_member"]
