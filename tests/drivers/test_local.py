"""The local driver with real worker processes: timeouts, memory limits, crashes, scaling."""

import os
import signal
import time

import pytest

import dispatch_kernel as dk

from dispatch_kernel.runtime.limits import pids_cgroup_root

from .support import crash, driver_pool


def whoami():
    import os

    return os.getpid(), os.getppid()


def test_a_timeout_kills_the_worker_and_fails_only_that_run(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    fn = client.deploy(nap, timeout="300ms")
    assert fn(0) == 0
    started = time.monotonic()
    with pytest.raises(dk.RunSystemError, match="timed out after 0.3s") as caught:
        fn(30)
    assert time.monotonic() - started < 10
    assert caught.value.run.error.type == "SystemError"
    assert fn(0.01) == 0.01


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("exit", "exited with code 3"),
        ("segv", "killed by SIGSEGV"),
        ("kill", "killed by SIGKILL"),
    ],
)
def test_a_crashing_worker_fails_only_its_run_and_names_the_cause(client, kind, cause):
    fn = client.deploy(crash)
    with pytest.raises(dk.RunSystemError, match=cause):
        fn(kind)
    assert fn("no") == "survived"
    statuses = [run.status for run in client.list_runs(function="crash")]
    assert statuses == ["SUCCEEDED", "FAILED"]


def chatty_then_stuck(how):
    """Prints from Python (no flush) and from a subprocess, then never answers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    print("connecting to the database")
    print("password is hunter2")
    print("a warning", file=sys.stderr)
    subprocess.run(["echo", "from a subprocess"], check=True)
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(60)


def _printed_until(run):
    return run.logs["stdout"], run.logs["stderr"]


def test_a_timed_out_run_keeps_what_it_printed(client):
    """Its worker is killed mid-run: the host reads the run's output files, which it holds too."""
    client.create_secret("db", {"password": "hunter2"})
    fn = client.deploy(chatty_then_stuck, timeout="1s", secrets=["db"])
    with pytest.raises(dk.RunSystemError, match="timed out after 1s") as caught:
        fn("sleep")
    stdout, stderr = _printed_until(client.get_run(caught.value.run.id))
    # In the order written, Python's and the subprocess's alike; the secret's value hidden.
    assert stdout == "connecting to the database\npassword is ********\nfrom a subprocess\n"
    assert stderr == "a warning\n"
    # Each run's files hold only that run's output: the worker empties them after each.
    printer = client.deploy(echo_print, max_workers=1)
    assert [printer("one"), printer("two")] == ["one", "two"]
    assert sorted(run.logs["stdout"] for run in client.list_runs(function="echo_print")) == ["one\n", "two\n"]


def test_a_cancelled_run_keeps_what_it_printed(client):
    fn = client.deploy(chatty_then_stuck, timeout="60s")
    handle = fn.spawn("sleep")
    deadline = time.monotonic() + 30
    while client.get_run(handle.id).status != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # let it print
    client.cancel_run(handle.id)
    run = client.wait_run(handle.id, timeout=30)
    assert run.status == "CANCELLED"
    assert _printed_until(run) == ("connecting to the database\npassword is hunter2\nfrom a subprocess\n",
                                   "a warning\n")


def test_a_run_that_crashes_its_worker_keeps_what_it_printed(client):
    fn = client.deploy(chatty_then_stuck)
    with pytest.raises(dk.RunSystemError, match="killed by SIGSEGV") as caught:
        fn("segv")
    assert _printed_until(client.get_run(caught.value.run.id))[0].startswith("connecting to the database\n")


def echo_print(x):
    print(x)
    return x


def test_a_worker_killed_from_outside_fails_its_run(client):
    def hang():
        import time

        time.sleep(60)

    fn = client.deploy(hang, timeout=30)
    run = fn.spawn()
    pool = driver_pool(client, "hang")
    deadline = time.monotonic() + 10
    while pool.size == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    for pid in _children_of(pool.zygote.process.pid):
        os.kill(pid, signal.SIGKILL)
    record = run.wait(20)
    assert record.status == "FAILED" and "SIGKILL" in record.error.message


def test_a_memory_bomb_fails_that_run_only(client):
    def allocate(mib):
        block = bytearray(mib * 1024 * 1024)
        return len(block)

    fn = client.deploy(allocate, memory="128M")
    assert fn(16) == 16 * 1024 * 1024
    with pytest.raises(dk.RunSystemError, match="memory limit of 128 MiB"):
        fn(4096)
    assert fn(16) == 16 * 1024 * 1024


def test_a_gradual_memory_leak_is_also_stopped(client):
    def leak():
        hoard = []
        while True:
            hoard.append(bytearray(1024 * 1024))

    fn = client.deploy(leak, memory="100M", timeout=60)
    with pytest.raises(dk.RunSystemError, match="memory limit"):
        fn()


def test_workers_fork_from_the_environments_fork_server(client):
    fn = client.deploy(whoami)
    pid, parent = fn()
    zygote = driver_pool(client, "whoami").zygote
    assert parent == zygote.process.pid
    assert pid != os.getpid()


def test_warm_workers_are_reused_and_cold_starts_are_marked(client):
    fn = client.deploy(whoami, max_workers=1)
    first = fn.spawn().wait(30)
    second = fn.spawn().wait(30)
    assert first.cold_start and not second.cold_start
    assert first.output == second.output


def test_min_workers_are_started_at_deploy(client):
    client.deploy(whoami, min_workers=2, max_workers=2)
    pool = driver_pool(client, "whoami")
    assert pool.size == 2 and pool.idle == 2
    run = client.invoke("whoami")
    assert not run.cold_start


def test_idle_workers_scale_to_zero_and_come_back(client):
    fn = client.deploy(whoami, idle_timeout="500ms")
    first_pid, _ = fn()
    pool = driver_pool(client, "whoami")
    assert pool.size == 1
    deadline = time.monotonic() + 10
    while pool.size and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool.size == 0
    with pytest.raises(ProcessLookupError):
        _wait_gone(first_pid)
    run = client.invoke("whoami")
    assert run.status == "SUCCEEDED" and run.cold_start and run.output[0] != first_pid


def test_max_workers_bounds_concurrency(client):
    def nap():
        import os
        import time

        time.sleep(0.3)
        return os.getpid()

    fn = client.deploy(nap, max_workers=2)
    runs = [fn.spawn() for _ in range(6)]
    pids = {run.result(30) for run in runs}
    assert len(pids) == 2


def test_closing_the_client_ends_every_worker(home):
    client = dk.connect(home=home)
    fn = client.deploy(whoami, min_workers=2, max_workers=2)
    pid, zygote_pid = fn()
    client.close()
    for process in (pid, zygote_pid):
        with pytest.raises(ProcessLookupError):
            _wait_gone(process)


def _children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(p) for p in children.read().split()]


def _wait_gone(pid: int, seconds: float = 10) -> None:
    """Raises ProcessLookupError once `pid` is gone; returns if it is still there at the end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        os.kill(pid, 0)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    raise ProcessLookupError(pid)
        except FileNotFoundError:
            raise ProcessLookupError(pid) from None
        time.sleep(0.05)


def _spares_of(zygote_pid: int) -> list[int]:
    spares = []
    for pid in _children_of(zygote_pid):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == "dispatch-spare":
                    spares.append(pid)
        except FileNotFoundError:
            pass
    return spares


def _wait_for_spare(zygote_pid: int, other_than: int | None = None) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spares = [p for p in _spares_of(zygote_pid) if p != other_than]
        if spares:
            return spares[0]
        time.sleep(0.01)
    raise AssertionError(f"no spare worker under fork server {zygote_pid}")


def test_a_cold_start_takes_the_spare_worker_contained_ahead_and_another_is_forked(client):
    fn = client.deploy(whoami, name="first")
    zygote = driver_pool(client, "first").zygote.process.pid
    spare = _wait_for_spare(zygote)
    assert fn() == (spare, zygote)  # the run's worker is the spare, now a worker
    with open(f"/proc/{spare}/comm") as comm:
        assert comm.read().strip() != "dispatch-spare"
    if pids_cgroup_root() is not None:  # contained before it was handed a function
        with open(f"/proc/{spare}/cgroup") as groups:
            assert any(line.split(":")[1] == "pids" and line.strip().endswith(f"/w{spare}") for line in groups)
    assert len(_spares_of(zygote)) <= 1
    second = _wait_for_spare(zygote, other_than=spare)
    assert client.deploy(whoami, name="second")() == (second, zygote)
    assert fn() == (spare, zygote)  # warm: the same worker


def test_a_spare_that_died_is_replaced_by_a_fork(client):
    fn = client.deploy(whoami, name="first")
    zygote = driver_pool(client, "first").zygote.process.pid
    spare = _wait_for_spare(zygote)
    os.kill(spare, signal.SIGKILL)
    with pytest.raises(ProcessLookupError):
        _wait_gone(spare)
    pid, parent = fn()
    assert parent == zygote and pid != spare
    run = fn.runs(limit=1)[0]
    assert run.status == "SUCCEEDED" and run.cold_start
