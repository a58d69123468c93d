"""No run is lost: a host killed mid-run leaves runs the next process finds and settles."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dispatch_kernel as dk

HOST = textwrap.dedent(
    """
    import json, sys, time
    import dispatch_kernel as dk

    def nap(seconds):
        import os, time
        time.sleep(seconds)
        return os.getpid()

    client = dk.connect(home=sys.argv[1])
    fn = client.deploy(nap, max_workers=1)
    done = fn.spawn(0)
    done.wait(30)
    running = fn.spawn(60)
    queued = fn.spawn(60)
    while client.get_run(running.id).status != "RUNNING":
        time.sleep(0.01)
    time.sleep(0.3)
    zygote = client.dispatch.drivers.get("local").pool(client.get_function("nap")).zygote.process.pid
    print(json.dumps({"done": done.id, "running": running.id, "queued": queued.id,
                      "worker": done.output, "zygote": zygote}), flush=True)
    time.sleep(120)
    """
)


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_host_killed_mid_run_leaves_runs_that_the_next_start_settles(home, tmp_path):
    script = tmp_path / "host.py"
    script.write_text(HOST)
    host = subprocess.Popen([sys.executable, str(script), str(home)], stdout=subprocess.PIPE, text=True)
    try:
        line = host.stdout.readline()
        assert line, "the host process printed nothing"
        ids = json.loads(line)
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait(10)
    # The host's fork server and workers do not outlive it.
    assert _gone(ids["zygote"]) and _gone(ids["worker"])
    with dk.connect(home=home) as client:
        assert client.dispatch.settled_on_start == 2
        assert client.get_run(ids["done"]).status == "SUCCEEDED"
        for key in ("running", "queued"):
            run = client.get_run(ids[key])
            assert run.status == "FAILED"
            assert run.error.type == "SystemError"
            assert "interrupted" in run.error.message
        # The function still works from the new process.
        assert isinstance(client.call("nap", 0), int)


def test_a_live_host_sharing_the_store_keeps_its_runs(home):
    with dk.connect(home=home) as first:
        def nap(seconds):
            import time

            time.sleep(seconds)
            return seconds

        fn = first.deploy(nap)
        run = fn.spawn(1.0)
        while first.get_run(run.id).status != "RUNNING":
            time.sleep(0.01)
        first.list_runs()  # apply the journal so the other process sees the run
        with dk.connect(home=home) as second:
            assert second.dispatch.settled_on_start == 0
        assert run.result(30) == 1.0


JOURNAL_WRITER = textwrap.dedent(
    """
    import os, sys
    from dispatch_kernel.model import Run, RunStatus
    from dispatch_kernel.store.sqlite import SqliteStore
    import dispatch_kernel.store.journal as journal
    journal.FLUSH_INTERVAL = 3600  # nothing reaches the database before the crash
    store = SqliteStore(sys.argv[1])
    queued, finished = Run(function="f"), Run(function="f")
    store.add_runs([queued, finished], host="crashed-host")
    finished.status = RunStatus.SUCCEEDED
    finished.output = {"answer": 42}
    store.finish_runs([finished])
    print(queued.id, finished.id, flush=True)
    os._exit(1)
    """
)


def test_journaled_runs_of_a_crashed_process_are_replayed(tmp_path):
    from dispatch_kernel.store.sqlite import SqliteStore

    script = tmp_path / "writer.py"
    script.write_text(JOURNAL_WRITER)
    db = tmp_path / "dispatch.db"
    out = subprocess.run([sys.executable, str(script), str(db)], capture_output=True, text=True, timeout=60)
    queued_id, finished_id = out.stdout.split()
    store = SqliteStore(db)
    try:
        assert store.get_run("default", finished_id).output == {"answer": 42}
        assert store.get_run("default", queued_id).status == "QUEUED"
        assert store.unsettled_hosts() == {"crashed-host"}
    finally:
        store.close()
    assert os.listdir(tmp_path / "dispatch.db.journal") == []
