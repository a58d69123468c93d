"""A soak: 16 REST clients for 60 s against one real `jupyter dispatch` server, each going round
deploy, run and wait, spawn and cancel, list, stream and delete. No answer may be an error, the
server's memory and open files must stay flat (within the bounds below), and once every function
is deleted no worker or fork server of theirs may be left.

Why it takes a minute: a leak of a few kilobytes or one file descriptor per request only shows
after thousands of requests, and a worker left behind only after many deploy/delete rounds; the
first seconds (imports, caches, the first workers) are excluded from the comparison, so the
window after them must be long enough to see a slope. It sleeps nowhere: every second is load.
"""

from __future__ import annotations

import threading
import time

import psutil

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus
from tests.server.live import LiveServer

CLIENTS = 16
SECONDS = 60.0
WARM_UP = 15.0  # seconds of load before the baseline is taken
MEMORY_GROWTH = 64 * 1024 * 1024  # bytes the server's RSS may grow after the warm-up
FILES_GROWTH = 32  # file descriptors the server may hold more after the warm-up


def work(n, sleep=0):
    import time

    time.sleep(sleep)
    return {"n": n * 2}


class Soaker(threading.Thread):
    """One client going round the cycle until `until`; errors are kept, never raised."""

    def __init__(self, index: int, server: LiveServer, until: float) -> None:
        super().__init__(daemon=True, name=f"soak-{index}")
        self.index, self.server, self.until = index, server, until
        self.errors: list[str] = []
        self.cycles = 0

    def run(self) -> None:
        try:
            with dk.connect(self.server.url, token=self.server.token) as client:
                while time.monotonic() < self.until:
                    self.cycle(client, f"soak-{self.index}-{self.cycles}")
                    self.cycles += 1
        except Exception as exc:  # noqa: BLE001  (every failure is the finding)
            import traceback

            # The whole chain: an error in the cycle is the cause; one raised while cleaning up
            # after it (a delete) would otherwise hide it.
            chain: list[str] = []
            cause: BaseException | None = exc
            while cause is not None and len(chain) < 5:
                where = " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(traceback.extract_tb(cause.__traceback__)))
                chain.append(f"{type(cause).__name__}: {cause} (at {where})")
                cause = cause.__cause__ or cause.__context__
            self.errors.append(" | while handling: ".join(chain))

    def cycle(self, client, name: str) -> None:
        seen: list[str] = []
        stop = client.watch_runs(lambda run: seen.append(run.id) if run.function == name else None)
        try:
            client.deploy(work, name=name, max_workers=1)
        except BaseException:
            stop()
            raise
        try:
            for n in range(5):
                run = client.invoke(name, {"n": n}, wait=True)
                assert run.status == RunStatus.SUCCEEDED and run.output == {"n": 2 * n}, (run.status, run.error)
            slow = client.invoke(name, {"n": 0, "sleep": 30}, wait=False)
            cancelled = client.cancel_run(slow.id)
            assert cancelled.status == RunStatus.CANCELLED, cancelled
            spawned = client.invoke(name, {"n": 7}, wait=False)
            assert client.wait_run(spawned.id, timeout=60).output == {"n": 14}
            listed = client.list_runs(function=name, limit=50)
            assert len(listed) == 7, [r.status for r in listed]
        finally:
            stop()
            client.delete_function(name)


def _usage(process: psutil.Process) -> tuple[int, int]:
    return process.memory_info().rss, process.num_fds()


def test_sixteen_clients_for_a_minute(tmp_path):
    server = LiveServer(tmp_path / "home", tmp_path / "work")
    try:
        process = psutil.Process(server.process.pid)
        start = time.monotonic()
        soakers = [Soaker(i, server, start + SECONDS) for i in range(CLIENTS)]
        for soaker in soakers:
            soaker.start()
        time.sleep(WARM_UP)
        baseline = _usage(process)
        peak = baseline
        while any(s.is_alive() for s in soakers):
            usage = _usage(process)
            peak = (max(peak[0], usage[0]), max(peak[1], usage[1]))
            time.sleep(1.0)
            assert time.monotonic() < start + SECONDS + 180, "the soakers did not finish"
        for soaker in soakers:
            soaker.join()
        errors = [f"{s.name}: {e}" for s in soakers for e in s.errors]
        assert not errors, errors[:5]
        cycles = sum(s.cycles for s in soakers)
        assert cycles >= CLIENTS, cycles  # every client went round at least once
        final = _usage(process)
        print(f"cycles {cycles}; rss MB baseline {baseline[0] / 2**20:.0f} peak {peak[0] / 2**20:.0f} "
              f"final {final[0] / 2**20:.0f}; fds baseline {baseline[1]} peak {peak[1]} final {final[1]}")
        assert final[0] - baseline[0] < MEMORY_GROWTH, (baseline, final)
        assert final[1] - baseline[1] < FILES_GROWTH, (baseline, final)
        # every function is deleted: no worker of theirs is left (bounded wait for the last exits).
        # The fork server of the environment they shared may stay, idle with its one spare
        # worker: they belong to the environment, not to a function.
        deadline = time.monotonic() + 30
        while True:
            fork_servers = [p for p in process.children()
                            if "dispatch_kernel.runtime.zygote" in " ".join(p.cmdline())]
            workers = [w for f in fork_servers for w in f.children(recursive=True)
                       if w.status() != psutil.STATUS_ZOMBIE and w.name() != "dispatch-spare"]
            if not workers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not workers, [(p.pid, p.cmdline()) for p in workers]
        assert len(fork_servers) <= 1, fork_servers
        with dk.connect(server.url, token=server.token) as client:
            assert client.list_functions() == []
    finally:
        server.stop()
