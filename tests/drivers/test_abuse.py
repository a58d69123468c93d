"""Abuse contained to its run: a fork bomb, descriptors or file size exhausted, processes left
running, a working directory or environment changed, SIGTERM blocked. Each fails or is cleaned
up within its run, the next run of the same function is clean, and other functions never
notice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import dispatch_kernel as dk
from dispatch_kernel.runtime.limits import pids_cgroup_root
from dispatch_kernel.settings import Settings
from tests.containers_support import CI

from .support import driver_pool


@pytest.fixture
def limited(home):
    """A client whose workers have small limits, as plugin_options of the local driver."""
    options = {"local": {"max_processes": 32, "max_open_files": 128, "max_file_size": "1M"}}
    with dk.connect(settings=Settings(home=home, plugin_options=options)) as client:
        yield client


def echo(x):
    return x


def _gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_a_fork_bomb_fails_its_run_and_leaves_nothing(limited):
    if os.geteuid() == 0 and pids_cgroup_root() is None:
        # RLIMIT_NPROC does not bind root: without a pids cgroup nothing would stop the bomb.
        message = "no writable pids cgroup on this machine: a fork bomb run as root is not contained"
        pytest.fail(message) if CI else pytest.skip(message)

    def bomb():
        import os

        while True:
            os.fork()

    bystander = limited.deploy(echo, min_workers=1)
    assert bystander("before") == "before"
    fn = limited.deploy(bomb)
    started = time.monotonic()
    with pytest.raises(dk.RunFunctionError, match="Resource temporarily unavailable"):
        fn()
    assert time.monotonic() - started < 30
    run = fn.runs(limit=1)[0]
    assert "process(es) the run left running" in run.logs["stderr"]
    worker = driver_pool(limited, "bomb")
    assert bystander("after") == "after"
    assert worker.size <= 1  # the same worker, or a fresh one: nothing else of the bomb's
    # The next run of the same worker finds no process of the bomb's left in its group.
    def family():
        import os

        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as children:
            return children.read().split()

    assert limited.deploy(family)() == []


def test_opening_descriptors_until_it_fails_fails_that_run_and_the_next_is_clean(limited):
    def hoard(count):
        import os

        global kept
        kept = globals().get("kept", [])
        for _ in range(count):
            kept.append(open(os.devnull))
        return len(os.listdir("/proc/self/fd"))

    fn = limited.deploy(hoard)
    with pytest.raises(dk.RunSystemError, match=r"used up the 128 file descriptors of its worker "
                       r"\(OSError: \[Errno 24\] Too many open files.*the worker was retired"):
        fn(100_000)
    assert fn(1) < 20  # a fresh worker: what the failed run hoarded is gone


def test_writing_past_the_file_size_limit_fails_the_write_not_the_worker(limited, tmp_path):
    def fill(path):
        import os

        with open(path, "wb") as out:
            while True:
                out.write(b"x" * 65536)
                out.flush()

    def pid():
        import os

        return os.getpid()

    fn = limited.deploy(fill)
    with pytest.raises(dk.RunFunctionError, match="File too large"):
        fn(str(tmp_path / "big"))
    assert (tmp_path / "big").stat().st_size <= 1 << 20
    assert limited.deploy(pid)() > 0


def test_a_child_left_running_is_ended_with_its_run_even_when_daemonized(client):
    def leave(daemonize):
        import os
        import subprocess

        if not daemonize:
            return subprocess.Popen(["sleep", "60"]).pid
        read, write = os.pipe()
        if os.fork() == 0:  # the classic double fork: the grandchild has no parent to wait for it
            os.setsid()
            if os.fork() == 0:
                os.write(write, str(os.getpid()).encode())
                os.execvp("sleep", ["sleep", "60"])
            os._exit(0)
        os.wait()
        return int(os.read(read, 32))

    fn = client.deploy(leave)
    for daemonize in (False, True):
        pid = fn(daemonize)
        assert _gone(pid), f"process {pid} outlived its run"
        assert "ended 1 process(es) the run left running" in fn.runs(limit=1)[0].logs["stderr"]


def test_the_working_directory_environment_and_signals_come_back_after_each_run(client, tmp_path):
    def meddle(where):
        import os
        import signal

        seen = (os.getcwd(), os.environ.get("MEDDLED"), signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
                sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        os.chdir(where)
        os.environ["MEDDLED"] = "yes"
        os.environ.pop("HOME", None)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        return seen

    fn = client.deploy(meddle)
    first = fn(str(tmp_path))
    second = fn(str(tmp_path))
    assert first == second
    assert first[0] != str(tmp_path) and first[1] is None and first[2] and first[3] == []
    assert "went back to the working directory" in fn.runs(limit=1)[0].logs["stderr"]


def test_a_run_that_blocks_sigterm_still_times_out_and_the_next_run_is_clean(client):
    def stubborn(seconds):
        import signal
        import time

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
        time.sleep(seconds)
        return signal.getsignal(signal.SIGTERM) == signal.SIG_IGN

    fn = client.deploy(stubborn, timeout="500ms")
    started = time.monotonic()
    with pytest.raises(dk.RunSystemError, match="timed out"):
        fn(60)
    assert time.monotonic() - started < 20
    assert fn(0) is True  # it ignores SIGTERM during its own run only
    run = fn.spawn(60)
    time.sleep(0.3)
    assert run.cancel().status in (dk.RunStatus.CANCELLED, dk.RunStatus.FAILED)


def test_limits_that_make_no_sense_are_refused_clearly(home):
    settings = Settings(home=home, plugin_options={"local": {"max_processes": -3}})
    with dk.connect(settings=settings) as client:
        with pytest.raises(dk.InvalidRequestError, match="max_processes must be a positive whole number"):
            client.deploy(echo)
        assert client.list_functions() == []


def _pids_root() -> Path:
    root = pids_cgroup_root()
    if root is None:
        if CI:
            pytest.fail("CI=true but this machine has no writable pids cgroup")
        pytest.skip("no writable pids cgroup here: nothing to leave behind")
    return Path(root)


def fork_server_pid():
    import os

    return os.getppid()  # a worker's parent is its fork server


def _client_fork_server_group(root, client) -> Path:
    """The cgroup of the fork server `client`'s workers come from (other clients of this
    process, earlier tests', may have fork servers of their own)."""
    group = root / f"dispatch-{client.deploy(fork_server_pid, min_workers=2)()}"
    assert group.is_dir() and sorted(p.name for p in group.iterdir() if p.is_dir())
    return group


def test_no_cgroup_is_left_behind_when_the_client_closes(home):
    root = _pids_root()
    with dk.connect(home=home) as client:
        group = _client_fork_server_group(root, client)
    assert not group.exists()  # close() waits for the fork server, which removes it


def test_no_cgroup_is_left_behind_by_a_killed_fork_server(home):
    """The fork server cannot clean up after SIGKILL: the host does it when it closes."""
    root = _pids_root()
    with dk.connect(home=home) as client:
        group = _client_fork_server_group(root, client)
        os.kill(int(group.name.removeprefix("dispatch-")), signal.SIGKILL)
    assert not group.exists(), sorted(p.name for p in group.iterdir())


def test_a_worker_leads_a_session_of_its_own(client):
    def session():
        import os

        return os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid()

    assert client.deploy(session)() == (True, True)
