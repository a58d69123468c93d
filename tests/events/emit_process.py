"""Emits events until killed: `python -m tests.events.emit_process HOME COUNT` prints each id once
its emit() has returned (the event is durable)."""

from __future__ import annotations

import sys

from dispatch_kernel.core import Dispatch
from dispatch_kernel.settings import Settings


def main() -> None:
    home, count = sys.argv[1], int(sys.argv[2])
    with Dispatch(Settings(home=home)) as core:
        for n in range(count):
            event = core.emit("job.done", {"n": n})
            print(event["id"], flush=True)


if __name__ == "__main__":
    main()
