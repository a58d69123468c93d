"""Where functions run: environments on this machine and OCI images, and the manager of both."""

from .base import Environment, FunctionImage, ImageBuilder

__all__ = ["Environment", "FunctionImage", "ImageBuilder"]
