"""ImageAssembler: an OCI image put together from a base image and layers, pushed to a registry.

The base image's layers are reused by reference (mounted within a registry, never re-uploaded);
the config has no creation time, so an unchanged image yields the same manifest digest and
pushes nothing.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from typing import Any

from ..model import DeployError
from .base import Progress
from .layers import Layer, canonical_json, digest_of
from .registry import Reference, RegistryClient

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
PYTHON_LABEL = "org.dispatch.python"  # the base image's Python version, "3.11"


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
        """The digests of the layers this build had to upload."""
        return [digest for what, digest, _ in self.pushed if what == "layer"]


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
        config_bytes = canonical_json(config)
        config_digest = digest_of(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [
                {"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"]}
                for d in base_manifest["layers"]
            ] + [l.descriptor() for l in layers],
        }
        manifest_bytes = canonical_json(manifest)
        digest = digest_of(manifest_bytes)
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


__all__ = ["CONFIG", "MANIFEST", "PYTHON_LABEL", "BuiltImage", "ImageAssembler"]
