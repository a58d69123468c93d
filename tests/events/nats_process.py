"""A second Dispatch process on the NATS bus: `python -m tests.events.nats_process HOME STREAM URL`.

It serves the subscriptions of the shared home until its standard input closes (or it is killed),
printing "ready" once its consumers run.
"""

from __future__ import annotations

import sys
import time

import dispatch_kernel as dk
from dispatch_kernel.settings import Settings


def main() -> None:
    home, stream, url = sys.argv[1:4]
    settings = Settings(home=home, bus="nats", plugin_options={"nats": {"url": url, "stream": stream, "ack_wait": 2.0}})
    with dk.connect(settings=settings) as core:
        deadline = time.monotonic() + 30
        subscriptions = core.list_subscriptions()
        while len([n for n in core.dispatch.events.supervisor.names() if n.startswith("nats:")]) < len(subscriptions):
            if time.monotonic() > deadline:
                sys.exit("the consumers did not start")
            time.sleep(0.05)
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
