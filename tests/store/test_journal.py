"""The run journal: appended entries are applied in batches, and survive the process that wrote them.

Crashes are real: a journal is written by a child process that is killed with SIGKILL, and the
next process replays it, as the next SqliteStore to open the same file does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dispatch_kernel.model import NotFoundError, RunStatus
from dispatch_kernel.store import journal
from dispatch_kernel.store.journal import RunJournal
from dispatch_kernel.store.sqlite import SqliteStore

WAIT = 30.0  # seconds: generous, the machine is shared


class Recorder:
    """An apply that records its batches, and fails its first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list] = []
        self._lock = threading.Lock()

    def __call__(self, entries: list) -> None:
        with self._lock:
            if self.failures:
                self.failures -= 1
                raise OSError("the database is not there right now")
            self.batches.append(list(entries))

    @property
    def entries(self) -> list:
        with self._lock:
            return [entry for batch in self.batches for entry in batch]


@pytest.fixture
def directory(tmp_path) -> Path:
    """The journal directory (apart from the child scripts and their reports)."""
    return tmp_path / "journal"


@pytest.fixture
def manual(monkeypatch):
    """Only flush() and close() apply: the background round would race the test's own calls."""
    monkeypatch.setattr(journal, "FLUSH_INTERVAL", 3600)


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def entry(number: int) -> tuple:
    return ("add", [(f"run-{number}", number)])


# A process that journals entries and never applies them, then waits to be killed.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dispatch_kernel.store import journal

    journal.FLUSH_INTERVAL = 3600  # nothing is applied before the kill

    def apply(entries):
        raise AssertionError("the writer applied its journal")

    directory, journals, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    opened = [journal.RunJournal(directory, apply) for _ in range(journals)]
    for number, writer in enumerate(opened):
        for i in range(count):
            writer.append("add", [(f"j{number}-{i}", i)])
    print(" ".join(writer.id for writer in opened), flush=True)
    sys.stdin.read()  # until killed (or, should the test die, until its end of the pipe closes)
    """
)

# A process that replays what dead processes left in a directory and reports what it applied.
RECOVERER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from dispatch_kernel.store.journal import RunJournal

    seen = []
    RunJournal.recover(Path(sys.argv[1]), seen.extend)
    Path(sys.argv[2]).write_text(json.dumps(seen))
    """
)


class Child:
    """A Python child process running `script`, which prints one line once it is ready."""

    def __init__(self, tmp_path: Path, script: str, *args: str) -> None:
        path = tmp_path / f"child-{os.urandom(4).hex()}.py"
        path.write_text(script)
        self.process = subprocess.Popen([sys.executable, str(path), *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], WAIT)
        if not ready:
            self.kill()
            pytest.fail(f"the child was not ready within {WAIT} s")
        self.line = self.process.stdout.readline().strip()
        if not self.line:
            self.kill()
            pytest.fail(f"the child failed: {self.process.stderr.read()}")

    def kill(self) -> None:
        """SIGKILL: no atexit, no close(), no flush, as in a real crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(WAIT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def child(tmp_path):
    started: list[Child] = []

    def _start(script: str, *args: str) -> Child:
        started.append(Child(tmp_path, script, *args))
        return started[-1]

    yield _start
    for one in started:
        one.kill()


def recover_elsewhere(tmp_path: Path, directory: Path) -> list:
    """Run RunJournal.recover in another process; the entries it applied, as tuples."""
    report = tmp_path / f"recovered-{os.urandom(4).hex()}.json"
    script = tmp_path / "recoverer.py"
    script.write_text(RECOVERER)
    subprocess.run([sys.executable, str(script), str(directory), str(report)], check=True, timeout=WAIT,
                   capture_output=True)
    return [(kind, [tuple(row) for row in rows]) for kind, rows in json.loads(report.read_text())]


def test_appended_entries_are_applied_by_flush_in_order(directory, manual):
    applied = Recorder()
    run_journal = RunJournal(directory, applied)
    for number in range(5):
        run_journal.append(*entry(number))
    assert applied.batches == []  # appended is durable on disk, not yet in the database
    run_journal.flush()
    assert applied.batches == [[entry(number) for number in range(5)]]
    run_journal.flush()  # nothing new: nothing applied twice
    assert len(applied.batches) == 1
    run_journal.close()


def test_entries_are_applied_in_the_background_without_a_flush(directory):
    applied = Recorder()
    run_journal = RunJournal(directory, applied)
    try:
        run_journal.append(*entry(1))
        # Bounded: another process would see the run within one flush interval.
        deadline = time.monotonic() + WAIT
        while not applied.entries and time.monotonic() < deadline:
            time.sleep(0.005)
        assert applied.entries == [entry(1)]
    finally:
        run_journal.close()


def test_segments_are_removed_once_applied_and_close_leaves_nothing(directory, manual):
    run_journal = RunJournal(directory, Recorder())
    run_journal.append(*entry(1))
    first = f"{run_journal.id}.00000000.log"
    assert files(directory) == [first, f"{run_journal.id}.lock"]
    assert (directory / first).stat().st_size > 0  # written before append() returned
    run_journal.flush()
    # The applied segment is gone; new appends go to a fresh, empty one.
    assert files(directory) == [f"{run_journal.id}.00000001.log", f"{run_journal.id}.lock"]
    assert (directory / f"{run_journal.id}.00000001.log").stat().st_size == 0
    run_journal.append(*entry(2))
    run_journal.close()
    assert files(directory) == []


def test_a_failing_apply_loses_nothing_and_keeps_its_segment_until_applied(directory, manual, caplog):
    applied = Recorder(failures=1)
    run_journal = RunJournal(directory, applied)
    run_journal.append(*entry(1))
    run_journal.flush()
    assert applied.batches == []
    assert "applying the run journal failed" in caplog.text
    assert f"{run_journal.id}.00000000.log" in files(directory)  # still on disk, should we crash now
    run_journal.append(*entry(2))
    run_journal.flush()
    # Retried in the order appended, each once.
    assert applied.batches == [[entry(1), entry(2)]]
    assert files(directory) == [f"{run_journal.id}.00000002.log", f"{run_journal.id}.lock"]
    run_journal.close()


def test_a_journal_closed_while_apply_fails_is_recovered_by_the_next_process(tmp_path, directory, manual):
    run_journal = RunJournal(directory, Recorder(failures=1_000_000))
    run_journal.append(*entry(1))
    run_journal.flush()
    run_journal.append(*entry(2))
    run_journal.close()  # its apply still fails: the entries stay on disk
    assert recover_elsewhere(tmp_path, directory) == [entry(1), entry(2)]
    assert files(directory) == []


def test_a_killed_process_entries_are_recovered_exactly_once(tmp_path, directory, child):
    writer = child(WRITER, str(directory), "1", "5")
    [journal_id] = writer.line.split()
    applied = Recorder()
    # While the writer lives its journal is its own to apply: recover leaves it alone.
    assert RunJournal.recover(directory, applied) == 0
    assert applied.batches == []
    writer.kill()
    # A record cut short by the crash was never acknowledged: it is dropped, the rest replayed.
    [segment] = directory.glob(f"{journal_id}.*.log")
    with open(segment, "ab") as torn:
        torn.write(struct.pack("!I", 1000) + b"half a record")
    assert RunJournal.recover(directory, applied) == 5
    assert applied.entries == [("add", [(f"j0-{i}", i)]) for i in range(5)]
    assert files(directory) == []
    assert RunJournal.recover(directory, applied) == 0  # replayed once, never again
    assert len(applied.entries) == 5


STORE_WRITER = textwrap.dedent(
    """
    import sys
    from dispatch_kernel.model import Run, RunStatus
    from dispatch_kernel.store import journal
    from dispatch_kernel.store.sqlite import SqliteStore

    journal.FLUSH_INTERVAL = 3600  # nothing reaches the database before the kill
    store = SqliteStore(sys.argv[1])
    queued, finished = Run(function="f"), Run(function="f")
    store.add_runs([queued, finished], host="killed-host")
    finished.status = RunStatus.SUCCEEDED
    finished.output = {"answer": 42}
    store.finish_runs([finished])
    print(queued.id, finished.id, flush=True)
    sys.stdin.read()
    """
)


def test_runs_journaled_by_a_killed_store_are_visible_to_the_next_store(tmp_path, child):
    db = tmp_path / "dispatch.db"
    writer = child(STORE_WRITER, str(db))
    queued_id, finished_id = writer.line.split()
    alive = SqliteStore(db)
    try:
        # The writer has not applied them, and its journal is not another process's to replay.
        with pytest.raises(NotFoundError):
            alive.get_run("default", finished_id)
    finally:
        alive.close()
    writer.kill()
    store = SqliteStore(db)
    try:
        finished = store.get_run("default", finished_id)
        assert finished.status == RunStatus.SUCCEEDED and finished.output == {"answer": 42}
        assert store.get_run("default", queued_id).status == RunStatus.QUEUED
        assert store.unsettled_hosts() == {"killed-host"}
    finally:
        store.close()
    assert files(tmp_path / "dispatch.db.journal") == []


def test_concurrent_appends_from_many_threads_are_all_applied_once_in_order(directory):
    # The background flusher runs as it does in a server, and large appends wake it early.
    applied = Recorder()
    run_journal = RunJournal(directory, applied)
    threads, appends, rows = 8, 200, 5
    start = threading.Barrier(threads)

    def append(thread: int) -> None:
        start.wait(WAIT)
        for i in range(appends):
            run_journal.append("add", [(thread, i, row) for row in range(rows)])

    workers = [threading.Thread(target=append, args=(t,)) for t in range(threads)]
    for one in workers:
        one.start()
    for one in workers:
        one.join(WAIT)
    assert not any(one.is_alive() for one in workers)
    run_journal.close()
    entries = applied.entries
    assert len(entries) == threads * appends
    for thread in range(threads):
        mine = [rows_[0][1] for _, rows_ in entries if rows_[0][0] == thread]
        assert mine == list(range(appends))  # each once, in the order its thread appended
    assert files(directory) == []


def test_two_processes_recovering_at_once_both_succeed_and_replay_each_entry_once(tmp_path, directory, child):
    writer = child(WRITER, str(directory), "2", "3")
    writer.kill()
    here: list = []
    elsewhere: list = []

    def apply(entries: list) -> None:
        here.extend(entries)
        if not elsewhere:
            # Another process (a second notebook or the CLI opening the same store) recovers
            # the same directory while this one is replaying its first journal.
            elsewhere.extend(recover_elsewhere(tmp_path, directory))

    RunJournal.recover(directory, apply)
    assert sorted(here + elsewhere) == sorted(("add", [(f"j{j}-{i}", i)]) for j in range(2) for i in range(3))
    assert not list(directory.glob("*.log"))


# A process that opens its journal exactly while another process recovers the directory: the
# other process runs between the lock file's creation and its flock (the race's window).
RACING_WRITER = textwrap.dedent(
    """
    import fcntl, subprocess, sys
    from pathlib import Path
    from dispatch_kernel.store import journal

    journal.FLUSH_INTERVAL = 3600
    directory, recoverer, report = sys.argv[1:4]
    real_flock = fcntl.flock

    def flock(fd, operation):
        fcntl.flock = real_flock
        subprocess.run([sys.executable, recoverer, directory, report], check=True, timeout=60)
        return real_flock(fd, operation)

    fcntl.flock = flock
    writer = journal.RunJournal(Path(directory), lambda entries: None)
    writer.append("add", [("late", 1)])
    print(writer.id, flush=True)
    sys.stdin.read()
    """
)


def test_a_journal_opened_during_another_process_recovery_is_still_recovered(tmp_path, child):
    journals = tmp_path / "journal"
    journals.mkdir()
    script = tmp_path / "recoverer.py"
    script.write_text(RECOVERER)
    writer = child(RACING_WRITER, str(journals), str(script), str(tmp_path / "raced.json"))
    writer.kill()
    applied = Recorder()
    RunJournal.recover(journals, applied)
    assert applied.entries == [("add", [("late", 1)])]


class _Planted:
    """What a stranger could leave in the journal directory: unpickling it runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_journal_is_read_without_running_anything(tmp_path, directory, caplog):
    import pickle

    marker = tmp_path / "ran"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "planted.lock").touch()  # no process holds it: it looks like a dead process's
    good = pickle.dumps(entry(1), protocol=5)
    bad = pickle.dumps(("add", [(_Planted(marker),)]), protocol=5)
    with open(directory / "planted.00000000.log", "wb") as out:
        for data in (good, bad):
            out.write(struct.pack("!I", len(data)) + data)
    replayed: list = []
    assert RunJournal.recover(directory, replayed.extend) == 1
    assert replayed == [entry(1)]  # what came before the planted record, and nothing after it
    assert not marker.exists()
    assert "not a journal entry" in caplog.text
