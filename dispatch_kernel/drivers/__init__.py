"""FaaS drivers: where and how a function's workers run."""

from .base import FaaSDriver, Runs

__all__ = ["FaaSDriver", "Runs"]
