"""The ImageBuilder interface: requirements in, a ready environment out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, NamedTuple

Progress = Callable[[str], None]


# Records, so NamedTuples: a frozen dataclass would compile its methods in every fresh process.
class Environment(NamedTuple):
    """A place functions run on this machine: a Python interpreter with the requirements
    installed (what drivers that run environments are given)."""

    id: str  # content address, or "host" for the caller's own environment
    python: str  # the interpreter to start workers with
    requirements: tuple[str, ...] = ()


class FunctionImage(NamedTuple):
    """A function's OCI image, pushed to the registry (what drivers that run images are given):
    its runtime server answers on port 8080 (runtime/server.py)."""

    reference: str  # registry/repository@sha256:..., pinned to the digest
    digest: str
    requirements: tuple[str, ...] = ()


class ImageBuilder(ABC):
    """Builds (or finds cached) environments for sets of requirements."""

    name: str = ""

    @abstractmethod
    def prepare(self, requirements: list[str], progress: Progress | None = None) -> Environment:
        """An environment that satisfies `requirements`, built if none is cached; log to `progress`."""
