"""FaaS drivers: where and how a function's workers run."""

from .base import FaaSDriver

__all__ = ["FaaSDriver"]
