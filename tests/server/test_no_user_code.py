"""No user code runs in the Jupyter server: what clients send is stored and handed to workers.

Each case posts code to a real `jupyter dispatch` process that writes the pid of whatever process
runs it to a marker file: a package whose unpickling does it, source text whose top level does
it, and a function whose output's unpickling would do it. The server's own pid must never be
there; a worker's (or the text probe's, a throwaway process) may.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import dispatch_kernel as dk
from dispatch_kernel.packaging import FunctionSource

from .live import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each test posts functions of its own names."""
    root = tmp_path_factory.mktemp("no-user-code")
    live = LiveServer(root / "home", root / "server")
    try:
        yield live
    finally:
        live.stop()


def _pids(marker: Path) -> set[int]:
    return {int(line) for line in marker.read_text().split()} if marker.exists() else set()


class _WritesMarkerWhenUnpickled:
    """Unpickles into a function, and writes the unpickling process's pid on the way."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        code = (f"(open({self.marker!r}, 'a').write(str(__import__('os').getpid()) + '\\n'), "
                f"lambda *args: 'ran')[1]")
        return eval, (code,)


def test_a_package_is_unpickled_only_by_workers(server, tmp_path):
    marker = tmp_path / "unpickled"
    source = FunctionSource(handler="evil", convention="plain",
                            payload=pickle.dumps(_WritesMarkerWhenUnpickled(str(marker))))
    with dk.connect(server.url, token=server.token) as client:
        fn = client.deploy(source, name="evil")
        assert fn() == "ran"
        client.delete_function("evil")
    pids = _pids(marker)
    assert pids, "a worker loads the package"
    assert server.process.pid not in pids


def test_a_pickled_package_of_the_old_form_is_refused_unread(server, tmp_path):
    marker = tmp_path / "old-form"
    old_form = base64.b64encode(pickle.dumps(_WritesMarkerWhenUnpickled(str(marker)))).decode()
    reply = _post(server, "functions", {"name": "old", "source": old_form})
    assert reply[0] == 400 and "not a function package" in reply[1]["message"]
    assert not marker.exists()


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody has reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _post(server: LiveServer, path: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(
        server.url + "dispatch/v1/" + path, method="POST", data=json.dumps(body).encode(),
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_source_text_is_parsed_in_the_server_and_run_elsewhere(server, tmp_path):
    marker = tmp_path / "ran"
    code = textwrap.dedent(f"""
        import os
        with open({str(marker)!r}, "a") as out:
            out.write(f"{{os.getpid()}}\\n")

        def handle(ctx, payload):
            return {{"pid": os.getpid()}}
    """)
    status, created = _post(server, "functions", {"name": "text", "source": {"code": code}})
    assert status == 201 and created["convention"] == "dispatch"
    with dk.connect(server.url, token=server.token) as client:
        worker = client.invoke("text", {}).output["pid"]
    pids = _pids(marker)
    assert worker in pids  # the worker ran the top level when it loaded the text
    assert server.process.pid not in pids


def test_an_output_reaches_a_rest_client_as_json_without_being_unpickled(server, tmp_path):
    marker = tmp_path / "output"

    def returns_a_trap(path):
        class Trap:
            def __reduce__(self):
                return (os.system, (f"echo $$ >> {path}",))

            def __repr__(self):
                return "<trap>"

        return [1, Trap()]

    with dk.connect(server.url, token=server.token) as client:
        fn = client.deploy(returns_a_trap)
        first, trap = fn(str(marker))
        assert first == 1 and trap["$python"].endswith(".Trap") and trap["repr"] == "<trap>"
    assert not marker.exists()  # nobody unpickled it: the worker sent JSON


def test_a_worker_answer_cannot_make_the_host_call_anything():
    from dispatch_kernel.runtime.protocol import Failure, Outcome, load_answer

    outcome = Outcome("r1", b"{}", Failure("FunctionError", "boom"), "out", "err", 1.0, 2.0, False)
    assert load_answer(pickle.dumps(("done", [outcome]), protocol=5)) == ("done", [outcome])
    with pytest.raises(pickle.UnpicklingError, match="may not hold posix.system"):
        load_answer(pickle.dumps(("done", [_System()])))


class _System:
    def __reduce__(self):
        return os.system, ("true",)


def test_the_code_a_client_sends_never_sees_the_servers_credentials(tmp_path):
    """The probe that loads source text and the workers that run it get the server's
    environment without its token and secret key; what the probe's text started ends with it."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    live = LiveServer(tmp_path / "home", tmp_path / "server", env={"DISPATCH_SECRET_KEY": key})
    try:
        leftover = tmp_path / "leftover.pid"
        code = textwrap.dedent(f"""
            import os, subprocess
            child = subprocess.Popen(["sleep", "60"])
            with open({str(leftover)!r}, "a") as out:  # the probe first, then the worker
                out.write(f"{{child.pid}}\\n")
            seen = [os.environ.get(name) for name in ("DISPATCH_TOKEN", "DISPATCH_SECRET_KEY")]
            if any(seen):
                raise RuntimeError(f"saw {{seen}}")

            def handle(ctx, payload):
                return [os.environ.get(name) for name in ("DISPATCH_TOKEN", "DISPATCH_SECRET_KEY")]
        """)
        status, created = _post(live, "functions", {"name": "nosy", "source": {"code": code}})
        assert status == 201, created
        with dk.connect(live.url, token=live.token) as client:
            assert client.invoke("nosy", {}).output == [None, None]  # the worker sees neither
        probes_child = int(leftover.read_text().split()[0])
        assert not _running(probes_child)  # the probe's session was killed once it had answered
    finally:
        live.stop()
