"""A disk that fills up while runs are recorded: the store says so clearly (StorageError, a 507
over REST), records nothing half-way, and once space returns it opens and holds every run it
acknowledged. The Dispatch home is on a small tmpfs mounted by the test (root is needed to
mount; without it the test is skipped, and fails under CI=true)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

import dispatch_kernel as dk
from dispatch_kernel.model import RunStatus, StorageError

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SIZE = "8m"


@pytest.fixture
def disk(tmp_path):
    """A tmpfs of SIZE, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        reason = f"cannot mount a tmpfs: {result.stderr.strip()}"
        if CI:
            pytest.fail(f"{reason} (CI=true: a missing component fails the test)")
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> Path:
    """Write zeros to a file under `path` until the disk is full; returns the file."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        while True:
            try:
                if out.write(chunk) < len(chunk):
                    break
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # the last pages too
        try:
            with open(path / f"crumbs-{size}", "ab", buffering=0) as out:
                while out.write(b"\0" * size):
                    pass
        except OSError:
            pass
    return filler


def echo(payload):
    return payload


def test_a_full_disk_refuses_clearly_and_keeps_every_acknowledged_run(disk):
    home = disk / "home"
    acknowledged: list[str] = []
    refused: list[str] = []
    with dk.connect(home=home) as client:
        client.deploy(echo)
        client.create_secret("db", {"password": "s3cret"})
        client.subscribe("echo", event_type="note.*", name="notes")
        payload = {"text": "x" * 2000}
        acknowledged += [client.invoke("echo", [payload]).id for _ in range(20)]

        filler = fill(disk)
        for _ in range(500):  # until the journal's last page is full too
            try:
                acknowledged.append(client.invoke("echo", [payload]).id)
            except StorageError as exc:
                refused.append(str(exc))
                if len(refused) >= 3:
                    break
        assert refused, "a full disk refused no run"
        assert "no space left on device" in refused[0] and "nothing of this request was recorded" in refused[0]
        with pytest.raises(StorageError, match="full"):
            client.create_secret("api", {"token": "t" * 4000})
        with pytest.raises(StorageError, match="could not store the event"):
            client.emit("note.taken", {"text": "z" * 8000}, id="lost-note")
        # reading still works, and runs acknowledged before are there, as their callers saw them
        for run_id in (acknowledged[0], acknowledged[-1]):
            assert client.get_run(run_id).status == RunStatus.SUCCEEDED

        for leftover in disk.iterdir():  # space returns
            if leftover.name != "home":
                leftover.unlink()
        acknowledged.append(client.invoke("echo", [payload]).id)
        assert client.get_run(acknowledged[-1]).output == payload
        client.create_secret("api", {"token": "t0ken"})
        client.emit("note.taken", {"text": "kept"}, id="kept-note")
        assert not filler.exists()

    with dk.connect(home=home) as reopened:
        runs = {run.id: run for run in reopened.list_runs(function="echo", limit=100_000) if run.event is None}
        deadline = time.monotonic() + 30  # the event refused never runs; the one kept runs once
        while not (noted := [r for r in reopened.list_runs(function="echo", limit=100_000) if r.event]):
            assert time.monotonic() < deadline, "the kept event did not run"
            time.sleep(0.05)
        time.sleep(0.3)
        noted = [r for r in reopened.list_runs(function="echo", limit=100_000) if r.event]
        assert [r.event["id"] for r in noted] == ["kept-note"]
        assert set(acknowledged) <= set(runs)  # every acknowledged run, none lost
        assert len(runs) == len(acknowledged)  # and nothing refused crept in
        for run_id in acknowledged:  # as their callers were told: ends kept until there was room
            assert runs[run_id].status == RunStatus.SUCCEEDED, runs[run_id]
            assert runs[run_id].output == payload
        assert reopened.get_secret("db").values == {"password": "s3cret"}
        assert reopened.get_secret("api").values == {"token": "t0ken"}
        assert reopened.call("echo", 5) == 5


def test_a_full_disk_is_a_507_over_rest_and_the_restarted_server_has_every_acknowledged_run(disk, tmp_path):
    import json
    import urllib.error
    import urllib.request

    from tests.server.api import response_problems
    from tests.server.live import LiveServer

    home = disk / "home"
    server = LiveServer(home, tmp_path / "work-1")
    acknowledged: list[str] = []
    try:
        with dk.connect(server.url, token=server.token) as client:
            client.deploy(echo)
            payload = {"text": "y" * 2000}
            acknowledged += [client.invoke("echo", [payload]).id for _ in range(10)]
            fill(disk)
            answer = None
            for _ in range(500):
                request = urllib.request.Request(
                    server.url + "dispatch/v1/runs", method="POST",
                    data=json.dumps({"function": "echo", "input": [payload], "wait": True}).encode(),
                    headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        acknowledged.append(json.loads(response.read())["id"])
                except urllib.error.HTTPError as exc:
                    answer = (exc.code, exc.headers.get("Content-Type", ""), exc.read())
                    break
            assert answer is not None, "a full disk refused no run"
            status, content_type, body = answer
            assert status == 507, body
            assert not response_problems("POST", "runs", status, content_type, body)  # as the spec says
            assert "no space left on device" in json.loads(body)["message"]
            with pytest.raises(StorageError):  # the REST client raises what the embedded one does
                client.invoke("echo", [payload])
            for leftover in disk.iterdir():
                if leftover.name != "home":
                    leftover.unlink()
            acknowledged.append(client.invoke("echo", [payload]).id)
    finally:
        server.stop()
    restarted = LiveServer(home, tmp_path / "work-2")
    try:
        with dk.connect(restarted.url, token=restarted.token) as client:
            runs = {run.id: run for run in client.list_runs(function="echo", limit=10_000)}
            assert set(runs) == set(acknowledged)
            assert all(runs[i].status == RunStatus.SUCCEEDED and runs[i].output == payload for i in acknowledged)
    finally:
        restarted.stop()
