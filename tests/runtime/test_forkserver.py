"""The fork server connect() starts before the core is imported: adopted by the local driver
when it is the one wanted, ended when it is not, never left running."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import dispatch_kernel as dk


def _fork_servers() -> set[int]:
    """The pids of this process's children that are fork servers."""
    pids: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            children = Path(f"/proc/{os.getpid()}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"dispatch_kernel.runtime.zygote" in command:
                pids.add(int(pid))
    return pids


def inc(x):
    return x + 1


def test_the_fork_server_started_by_connect_is_the_one_that_runs_the_first_function(home):
    before = _fork_servers()
    with dk.connect(home=home) as client:
        started = _fork_servers() - before
        assert len(started) == 1  # started by connect() itself, before the deploy
        fn = client.deploy(inc, name="inc")
        assert fn(1) == 2
        assert _fork_servers() - before == started  # adopted: no second one was started
        run = fn.runs(limit=1)[0]
        assert run.status == "SUCCEEDED" and run.output == 2
    assert _fork_servers() - before == set()


def test_a_fork_server_not_wanted_by_the_settings_is_ended(home):
    # Settings given: connect() starts nothing ahead, and with prestart off the driver waits
    # for the first deploy.
    from dispatch_kernel.settings import Settings

    before = _fork_servers()

    with dk.connect(settings=Settings(home=home, plugin_options={"local": {"prestart": False}})) as client:
        assert _fork_servers() - before == set()
        assert client.deploy(inc, name="inc")(1) == 2
    assert _fork_servers() - before == set()


def test_a_connect_that_fails_leaves_no_fork_server(home):
    before = _fork_servers()
    with pytest.raises(dk.DispatchError, match="nosuchstore"):
        dk.connect(home=home, store="nosuchstore")
    assert _fork_servers() - before == set()


def test_the_driver_ends_a_fork_server_started_for_another_interpreter(home):
    from dispatch_kernel.core import Dispatch
    from dispatch_kernel.runtime.forkserver import ForkServerProcess, fork_server_log
    from dispatch_kernel.settings import Settings

    before = _fork_servers()
    # A fork server of the right interpreter logging elsewhere is not the one the driver wants.
    stray = ForkServerProcess(sys.executable, "host", home / "elsewhere.log")
    with Dispatch(Settings(home=home), fork_server=stray) as core:
        client = dk.LocalClient(core)
        assert client.deploy(inc, name="inc")(1) == 2
        assert stray.process.wait(10) is not None  # ended, not adopted
        assert len(_fork_servers() - before) == 1
    assert _fork_servers() - before == set()
    assert os.path.exists(fork_server_log(home, "host"))


def open_files():
    """What this process's descriptors point at (as /proc/self/fd shows it: pipe:[inode], ...)."""
    import os

    return sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}"))


def test_descriptors_the_host_left_inheritable_reach_neither_the_fork_server_nor_workers(home):
    """The fork server is spawned with every inheritable descriptor of the host (posix_spawn
    cannot close them); it closes all but its own at once, so its workers get none either."""
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    os.set_inheritable(write_end, True)
    pipe = f"pipe:[{os.fstat(read_end).st_ino}]"
    before = _fork_servers()
    try:
        with dk.connect(home=home) as client:
            in_worker = client.deploy(open_files, name="fds")()  # the fork server is up: it has said hello
            assert in_worker and pipe not in in_worker
            (fork_server,) = _fork_servers() - before
            held = [os.readlink(f"/proc/{fork_server}/fd/{fd}") for fd in os.listdir(f"/proc/{fork_server}/fd")]
            assert held and pipe not in held
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_fork_server_whose_interpreter_is_missing_is_an_error_at_once(home):
    from dispatch_kernel.runtime.forkserver import ForkServerProcess

    before = _fork_servers()
    with pytest.raises(FileNotFoundError):
        ForkServerProcess(str(home / "no-such-python"), "host", str(home / "zygote.log"))
    assert _fork_servers() == before
