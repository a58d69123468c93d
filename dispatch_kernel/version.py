"""The version of dispatch-kernel (one place: the package, the server extension and the wheel)."""

__version__ = "0.1.0"
