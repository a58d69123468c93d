"""Where functions run: environments (virtual environments) and, later, OCI images."""

from .base import Environment, ImageBuilder

__all__ = ["Environment", "ImageBuilder"]
