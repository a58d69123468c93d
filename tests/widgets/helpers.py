"""Helpers for the widget tests: functions to deploy, and a bounded wait."""

from __future__ import annotations

import time
from typing import Callable


def add(x, y):
    print(f"adding {x} and {y}")
    return x + y


def divide(x, y):
    import sys

    print("about to divide", file=sys.stderr)
    return x / y


def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


def eventually(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.02) -> bool:
    """True as soon as `check()` is, False if it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
