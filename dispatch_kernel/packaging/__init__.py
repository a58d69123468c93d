"""Turning a Python function into a FunctionSource that a worker anywhere can load."""

from .source import FunctionSource, package

__all__ = ["FunctionSource", "package"]
