"""Faults: SIGKILL of a worker, of the fork server, of the podman service. The run in flight
fails with a clear cause, and the next run works."""

from __future__ import annotations

import os
import signal
import time

import pytest

import dispatch_kernel as dk
from dispatch_kernel.images.services import PodmanService
from dispatch_kernel.settings import Settings
from tests.containers_support import container_options

from .support import driver_pool


def nap(seconds):
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def _started(run: dk.RunHandle, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while run.status != dk.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # running in its worker, not only recorded as RUNNING


def test_sigkill_of_a_worker_fails_its_run_with_the_cause_and_the_next_run_works(client):
    fn = client.deploy(nap, min_workers=1)
    worker = fn(0)
    run = fn.spawn(60)
    _started(run)
    os.kill(worker, signal.SIGKILL)
    record = run.wait(20)
    assert record.status == "FAILED"
    assert record.error.type == "SystemError"
    assert record.error.message == "the worker process was killed by SIGKILL (out of memory?) during the run"
    assert fn(0) not in (0, worker)


def test_sigkill_of_the_fork_server_fails_the_run_in_flight_and_the_next_run_works(client):
    fn = client.deploy(nap, min_workers=2)
    other = client.deploy(nap, name="other", min_workers=1)
    first = other(0)
    zygote = driver_pool(client, "nap").zygote
    run = fn.spawn(60)
    _started(run)
    os.kill(zygote.process.pid, signal.SIGKILL)
    record = run.wait(20)
    assert record.status == "FAILED" and record.error.type == "SystemError"
    assert record.error.message == ("the fork server of environment host was killed by SIGKILL, and the "
                                    "worker process with it, during the run")
    # Its workers died with it; the next runs get a new fork server and new workers, for
    # this function and for the other one of the same environment, with nothing failed.
    assert fn(0) > 0
    assert other(0) != first
    assert driver_pool(client, "nap").zygote.process.pid != zygote.process.pid
    statuses = [r.status for r in client.list_runs(function="other")]
    assert statuses.count("FAILED") == 0


@pytest.fixture
def own_podman(registry, tmp_path):
    """A podman service of this test's own: the test kills it."""
    service = PodmanService(tmp_path / "podman", insecure_registries=[registry.address])
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.mark.timeout(600)
def test_sigkill_of_the_podman_service_loses_no_run_and_the_next_runs_work(home, registry, python_base,
                                                                            own_podman):
    settings = Settings(home=home, driver="container",
                        plugin_options=container_options(registry.address, python_base, own_podman.url))
    with dk.connect(settings=settings) as client:
        fn = client.deploy(nap, max_workers=2)
        assert fn(0) > 0
        run = fn.spawn(2)
        _started(run)
        own_podman.process.send_signal(signal.SIGKILL)
        own_podman.process.wait(10)
        record = run.wait(60)
        # The container runs on without the service (conmon keeps it): the run in flight
        # finishes, and the warm container answers the next run.
        assert record.status == "SUCCEEDED", record.error
        assert fn(0) > 0
        # A new container needs the service: without it the deploy fails and says why.
        with pytest.raises(dk.DeployError, match="the engine could not pull .*Connection refused"):
            client.deploy(nap, name="fresh", max_workers=1)
        assert client.get_function("fresh").status == "ERROR"
        assert client.deploy(nap, name="local", driver="local")(0) > 0  # local functions never notice
        process, own_podman.process = own_podman.process, None
        own_podman.start()  # back, on the same socket and storage
        fresh = client.deploy(nap, name="fresh", max_workers=1)
        assert fresh(0) > 0 and fn(0) > 0
        assert process.returncode == -signal.SIGKILL
