"""A small client for the OCI distribution API: blobs and manifests over one keep-alive connection.

Only what an image build needs: ask whether a blob is there, mount it from another repository,
upload it in one monolithic PUT, and read and write manifests. Every upload is recorded in
`pushed`, so a caller (and a test) can see exactly what a build sent.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model import DeployError

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


class RegistryError(DeployError):
    """The registry refused or failed a request."""


@dataclass(frozen=True)
class Reference:
    """registry/repository:tag or registry/repository@digest."""

    registry: str
    repository: str
    tag: str = "latest"
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, digest = (text.split("@", 1) + [""])[:2]
        tag = "latest"
        head, _, last = name.rpartition("/")
        if ":" in last:
            last, tag = last.split(":", 1)
        name = f"{head}/{last}" if head else last
        registry, _, repository = name.partition("/")
        if not repository or ("." not in registry and ":" not in registry and registry != "localhost"):
            raise ValueError(f"{text!r} does not name a registry (host:port/repository:tag)")
        return cls(registry, repository, tag, digest)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.registry}/{self.repository}@{self.digest}"
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def ref(self) -> str:
        """What the registry API calls the reference: the digest if pinned, else the tag."""
        return self.digest or self.tag


class RegistryClient:
    """The distribution API of one registry (plain HTTP by default: 127.0.0.1 in tests)."""

    def __init__(self, address: str, *, secure: bool = False, timeout: float = 120.0) -> None:
        self.address = address
        self.secure = secure
        self.timeout = timeout
        self.pushed: list[tuple[str, str, int]] = []  # (what, digest, size) of every upload
        self._local = threading.local()

    # ------------------------------------------------------------------ transport

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
            connection = self._local.connection = cls(self.address, timeout=self.timeout)
        return connection

    def _request(self, method: str, url: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, url, body=body, headers=headers or {})
                response = connection.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                self._local.connection = None
                if attempt == 2 or hasattr(body, "read"):
                    raise RegistryError(f"the registry {self.address} failed: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _fail(self, what: str, status: int, data: bytes) -> RegistryError:
        return RegistryError(f"{what}: the registry {self.address} answered {status}: "
                             f"{data[:300].decode(errors='replace')}")

    # ------------------------------------------------------------------ blobs

    def ping(self) -> bool:
        """True when the registry speaks the distribution API."""
        try:
            status, _, _ = self._request("GET", "/v2/")
        except RegistryError:
            return False
        return status == 200

    def has_blob(self, repository: str, digest: str) -> bool:
        status, _, _ = self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
        return status == 200

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Link a blob that `source` already has into `repository`, without uploading it."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        status, headers, _ = self._request("POST", f"/v2/{repository}/blobs/uploads/?{query}",
                                           headers={"Content-Length": "0"})
        if status == 202 and "location" in headers:  # not mounted: cancel the upload it opened
            self._request("DELETE", self._path(headers["location"]))
        return status == 201

    def push_blob(self, repository: str, digest: str, data: bytes | Path, what: str = "blob") -> None:
        """Upload a blob in one request (a monolithic upload)."""
        status, headers, body = self._request("POST", f"/v2/{repository}/blobs/uploads/",
                                              headers={"Content-Length": "0"})
        if status != 202:
            raise self._fail(f"starting the upload of {digest}", status, body)
        location = self._path(headers["location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        if isinstance(data, Path):
            size = data.stat().st_size
            with open(data, "rb") as file:
                status, _, body = self._request("PUT", location, body=file, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(size)})
        else:
            size = len(data)
            status, _, body = self._request("PUT", location, body=data, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(size)})
        if status != 201:
            raise self._fail(f"uploading {digest}", status, body)
        self.pushed.append((what, digest, size))

    def get_blob(self, repository: str, digest: str) -> bytes:
        status, headers, body = self._request("GET", f"/v2/{repository}/blobs/{digest}")
        if status in (301, 302, 307) and "location" in headers:
            status, _, body = self._request("GET", self._path(headers["location"]))
        if status != 200:
            raise self._fail(f"reading {repository}@{digest}", status, body)
        return body

    # ------------------------------------------------------------------ manifests

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest `reference` points at in `repository`, or None when there is none."""
        status, headers, _ = self._request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                           headers={"Accept": MANIFEST_TYPES})
        if status == 404:
            return None
        if status != 200:
            raise self._fail(f"looking up {repository}:{reference}", status, b"")
        return headers.get("docker-content-digest")

    def get_manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str]:
        status, headers, body = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                                              headers={"Accept": MANIFEST_TYPES})
        if status != 200:
            raise self._fail(f"reading the manifest {repository}:{reference}", status, body)
        return json.loads(body), headers.get("docker-content-digest", "")

    def put_manifest(self, repository: str, reference: str, manifest: bytes, media_type: str) -> str:
        status, headers, body = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                                              body=manifest, headers={"Content-Type": media_type})
        if status != 201:
            raise self._fail(f"writing the manifest {repository}:{reference}", status, body)
        self.pushed.append(("manifest", headers.get("docker-content-digest", ""), len(manifest)))
        return headers.get("docker-content-digest", "")

    def _path(self, location: str) -> str:
        parsed = urllib.parse.urlsplit(location)
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")


__all__ = ["Reference", "RegistryClient", "RegistryError"]
