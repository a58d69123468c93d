"""Emits events until killed: `python -m tests.events.emit_process HOME COUNT` prints each id once
its emit() has returned (the event is durable)."""

from __future__ import annotations

import sys

import dispatch_kernel as dk
from dispatch_kernel.settings import Settings


def main() -> None:
    home, count = sys.argv[1], int(sys.argv[2])
    with dk.connect(settings=Settings(home=home)) as core:
        for n in range(count):
            event = core.emit("job.done", {"n": n})
            print(event["id"], flush=True)


if __name__ == "__main__":
    main()
