"""Debian for images: a bookworm rootfs with Python, the base image made from it, and system
packages as a layer of their own.

The rootfs is debootstrapped once into the cache (DISPATCH_CACHE) and pushed as the Python base
image `dispatch/python:3.11-bookworm` for users without one of their own. System packages are
installed by the base's own apt in a scratch copy of that rootfs, through chroot (root only), and
the files the install added or changed are packed as one layer, cached under the sorted package
names: no daemon is involved anywhere.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..model import DeployError
from .assembly import PYTHON_LABEL, ImageAssembler
from .base import Progress
from .layers import BlobCache, default_cache, file_lock
from .registry import Reference, RegistryClient

DEBIAN_BASE_REPOSITORY = "dispatch/python"
DEBIAN_LABEL = "org.dispatch.debian"  # "bookworm" on the base made by debian_python_base


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
    with file_lock(cache / "rootfs" / "bookworm-python3.lock"):
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
    with file_lock(cache / "oci" / "debian-base.lock"):
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


# Install by-products that an image does not need (as in debian:bookworm-slim).
_SKIP = ("var/cache/", "var/lib/apt/lists/", "var/log/", "usr/share/doc/", "usr/share/man/",
         "usr/share/locale/", "usr/share/info/", "tmp/", "run/", "dev/", "proc/", "sys/")


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    state = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def debian_packages_layer(blobs, cache: Path, packages: list[str], progress: Progress | None = None):
    """A layer with `packages` (and their dependencies) installed on the cached Debian rootfs."""
    say = progress or (lambda line: None)
    key = "system-" + hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()[:24]
    cached = blobs.lookup(key)
    if cached is not None:
        return cached
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        raise DeployError("installing system packages needs root and chroot")
    rootfs = debian_rootfs(cache, progress)
    with tempfile.TemporaryDirectory(prefix="dispatch-apt-") as tmp:
        work = Path(tmp) / "root"
        subprocess.run(["cp", "-a", str(rootfs), str(work)], check=True)
        before = _snapshot(work)
        say(f"apt-get install {' '.join(packages)}")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        process = subprocess.run(
            ["chroot", str(work), "apt-get", "install", "-y", "--no-install-recommends", *packages],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, stdin=subprocess.DEVNULL)
        for line in process.stdout.splitlines()[-20:]:
            say(line)
        if process.returncode != 0:
            raise DeployError(f"apt-get install {' '.join(packages)} failed:\n{process.stdout[-2000:]}")
        after = _snapshot(work)
        changed = sorted(path for path, state in after.items()
                         if before.get(path) != state and not (path + "/").startswith(_SKIP)
                         and not any(path.startswith(skip) for skip in _SKIP))
        if not changed:
            raise DeployError(f"apt-get installed nothing for {' '.join(packages)} (already in the base?)")

        def fill(tar) -> None:
            wanted = set(changed)
            for path in changed:  # parents first (sorted), directories whose contents changed too
                parent = os.path.dirname(path)
                while parent and parent not in wanted:
                    wanted.add(parent)
                    parent = os.path.dirname(parent)
            for path in sorted(wanted):
                info = tar.gettarinfo(str(work / path), path)
                if info.isreg():
                    with open(work / path, "rb") as file:
                        tar.addfile(info, file)
                else:
                    tar.addfile(info)

        layer = blobs.write_layer(fill)
        blobs.remember(key, layer)
        say(f"system packages layer {layer.digest[:19]} ({layer.size / 1024:.0f} KiB, {len(changed)} paths)")
        return layer


__all__ = ["DEBIAN_BASE_REPOSITORY", "DEBIAN_LABEL", "apt_mirror", "debian_packages_layer",
           "debian_python_base", "debian_rootfs"]
