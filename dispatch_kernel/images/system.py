"""System packages as a layer of their own, installed by the base's own apt, without a daemon.

For the Debian base made here (images/oci.py: debian_python_base): a scratch copy of the cached
rootfs, `apt-get install` inside it through chroot (root only), and the files that the install
added or changed packed as one layer. The layer is cached under the sorted package names.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..model import DeployError
from .base import Progress

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
    from .oci import debian_rootfs

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


__all__ = ["debian_packages_layer"]
