"""ImageManager: Dispatch's image manager. Base images and images as entities, and the artifacts
drivers run: Python environments on this machine, and function images in the registry.

It is the only owner of the OCI builder (made on first use, from plugin_options["oci"]), and of
the environment builder chosen by Settings.images (venv by default).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import plugins
from ..model import BaseImage, ConflictError, DeployError, Function, FunctionStatus, Image, InvalidRequestError
from ..model import NotFoundError, check_name
from ..packaging import FunctionSource
from ..settings import Settings
from ..store.base import EntityStore
from .base import Environment, FunctionImage, ImageBuilder, Progress

if TYPE_CHECKING:
    from .oci import OciBuilder

_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


class ImageManager:
    """Base images, images, and what a function is deployed from."""

    def __init__(self, settings: Settings, store: EntityStore) -> None:
        self.settings = settings
        self.store = store
        self.environments: ImageBuilder = plugins.load("image builder", settings.images)(settings)
        self._oci: OciBuilder | None = None
        self._lock = threading.Lock()

    def oci(self) -> OciBuilder:
        """The OCI image builder (it needs a registry: plugin_options["oci"]), made once."""
        with self._lock:
            if self._oci is None:
                from .oci import OciBuilder

                environments = self.environments
                self._oci = environments if isinstance(environments, OciBuilder) else OciBuilder(self.settings)
            return self._oci

    # ------------------------------------------------------------------ artifacts

    def environment(self, function: Function, source: FunctionSource,
                    progress: Progress | None = None) -> Environment:
        """A Python environment here with what the function needs (and its image's requirements)."""
        image = self._image_of(function)
        return self.environments.prepare(_with_image_requirements(image, source.requirements), progress)

    def function_image(self, function: Function, source: FunctionSource,
                       progress: Progress | None = None) -> FunctionImage:
        """The function's OCI image, built and pushed (on its image, when it names one)."""
        image = self._image_of(function)
        built = self.oci().function_image(function, source, progress, base=image.image_url if image else None)
        return FunctionImage(built.reference, built.digest, tuple(source.requirements))

    def _image_of(self, function: Function) -> Image | None:
        return self.store.get(Image, function.org, function.image_name) if function.image_name else None

    # ------------------------------------------------------------------ base images

    def create_base_image(self, name: str, image_url: str, *, org: str, language: str = "python3",
                          tags: dict[str, str] | None = None) -> BaseImage:
        """Register an image in a registry as a base for images; READY once its manifest is read
        (ERROR with the reason when it cannot be)."""
        from .assembly import PYTHON_LABEL
        from .registry import Reference

        check_name("base image", name)
        if language not in ("python3", "python"):
            raise InvalidRequestError(f"language {language!r} is not supported (python3)")
        try:
            reference = Reference.parse(image_url)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        base = BaseImage(name=name, org=org, image_url=image_url, language="python3",
                         tags=dict(tags or {}), status=FunctionStatus.INITIALIZED.value)
        self.store.create(base)
        try:
            builder = self.oci()
            client = builder.assembler.client(reference.registry)
            base.digest = client.manifest_digest(reference.repository, reference.ref) or ""
            if not base.digest:
                raise NotFoundError(f"{image_url} is not in its registry")
            base.python = builder.labels(reference).get(PYTHON_LABEL, "")
            base.status = FunctionStatus.READY.value
        except Exception as exc:
            base.status, base.reason = FunctionStatus.ERROR.value, str(exc)
        return self.store.update(base)

    def get_base_image(self, name: str, org: str) -> BaseImage:
        """The base image called `name`."""
        return self.store.get(BaseImage, org, name)

    def list_base_images(self, org: str) -> list[BaseImage]:
        """Every base image of the organization, by name."""
        return self.store.list(BaseImage, org)

    def delete_base_image(self, name: str, org: str) -> None:
        """Forget a base image (what is in the registry stays)."""
        self.store.delete(BaseImage, org, name)

    # ------------------------------------------------------------------ images

    def create_image(self, name: str, base: str, *, org: str, requirements: Iterable[str] | None = None,
                     system_packages: Iterable[str] | None = None, tags: dict[str, str] | None = None,
                     progress: Progress | None = None) -> Image:
        """Build an image on a base image: its system packages and requirements as layers of
        their own, pushed to the registry; functions deployed with `image=name` are built on it.
        The build streams its log to `progress`; a failed build leaves the image in ERROR."""
        from packaging.requirements import InvalidRequirement, Requirement

        from .oci import repository_name

        check_name("image", name)
        base_image = self.store.get(BaseImage, org, base)
        if base_image.status != FunctionStatus.READY.value:
            raise ConflictError(f"base image {base!r} is not ready ({base_image.status}: {base_image.reason})")
        wanted = sorted({r.strip() for r in requirements or [] if r.strip()})
        for text in wanted:
            try:
                Requirement(text)
            except InvalidRequirement:
                raise InvalidRequestError(f"not a valid requirement: {text!r}") from None
        packages = sorted({p.strip() for p in system_packages or [] if p.strip()})
        for package_name in packages:
            if not _DEBIAN_PACKAGE.fullmatch(package_name):
                raise InvalidRequestError(f"not a valid Debian package name: {package_name!r}")
        try:
            image = self.store.get(Image, org, name)
        except NotFoundError:
            image = self.store.create(Image(name=name, org=org, status=FunctionStatus.CREATING.value))
        else:  # a failed build may be retried under its name; anything else is taken
            if image.status != FunctionStatus.ERROR.value:
                raise ConflictError(f"an image named {name!r} already exists ({image.status})")
        image.base_image, image.requirements, image.system_packages = base, wanted, packages
        image.tags, image.status, image.reason = dict(tags or {}), FunctionStatus.CREATING.value, ""
        image.touch()
        image = self.store.update(image)
        try:
            built = self.oci().build_environment(
                repository_name("dispatch", "images", org, name), base_image.image_url, wanted, packages,
                progress)
        except Exception as exc:
            image.status, image.reason = FunctionStatus.ERROR.value, str(exc)
            self.store.update(image)
            raise DeployError(f"building image {name!r} failed: {exc}") from exc
        image.image_url, image.digest = built.reference, built.digest
        image.status = FunctionStatus.READY.value
        return self.store.update(image)

    def get_image(self, name: str, org: str) -> Image:
        """The image called `name`."""
        return self.store.get(Image, org, name)

    def list_images(self, org: str) -> list[Image]:
        """Every image of the organization, by name."""
        return self.store.list(Image, org)

    def delete_image(self, name: str, org: str) -> None:
        """Forget an image (what is in the registry stays; functions built on it keep running)."""
        self.store.delete(Image, org, name)

    def close(self) -> None:
        """Release the registry connections."""
        if self._oci is not None:
            self._oci.registry.close()


def _with_image_requirements(image: Image | None, requirements: list[str]) -> list[str]:
    """An image's requirements plus the function's own; the image's pin wins for a name in both."""
    if image is None:
        return list(requirements)
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    taken = {canonicalize_name(Requirement(r).name) for r in image.requirements}
    return [*image.requirements, *(r for r in requirements if canonicalize_name(Requirement(r).name) not in taken)]


__all__ = ["ImageManager"]
