"""Where entities and runs are kept: the EntityStore interface and its implementations."""

from .base import EntityStore

__all__ = ["EntityStore"]
