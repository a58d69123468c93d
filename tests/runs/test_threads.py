"""RunThreads makes its pool on the first submit and refuses work once shut down."""

from __future__ import annotations

import sys
import threading

import pytest

from dispatch_kernel.runs.threads import RunThreads


def test_the_pool_is_made_on_the_first_submit_and_runs_on_its_threads():
    threads = RunThreads(2)
    assert threads._pool is None  # nothing made yet: a core whose runs all take the warm path
    names = [threads.submit(lambda: threading.current_thread().name).result(5) for _ in range(3)]
    assert all(name.startswith("dispatch-run") for name in names)
    threads.shutdown(wait=True)


def test_a_shut_pool_refuses_work_whether_or_not_it_was_made():
    never_used = RunThreads(1)
    never_used.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        never_used.submit(print)
    used = RunThreads(1)
    assert used.submit(lambda: 42).result(5) == 42
    used.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        used.submit(print)


def test_importing_it_costs_no_thread_pool_module():
    import subprocess

    code = "import sys, dispatch_kernel.runs.threads; print('concurrent.futures' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
