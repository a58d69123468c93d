"""The plug-in loader: one for every group, errors that name what is there, a broken plug-in
reported and skipped, the test seam; and a driver from another package, found by its entry
point, that deploys and runs functions with no change to the core."""

from __future__ import annotations

import logging

import pytest

import dispatch_kernel as dk
from dispatch_kernel import plugins
from dispatch_kernel.drivers.base import FaaSDriver, Runs
from dispatch_kernel.settings import Settings

# A driver in a package of its own: each batch of jobs runs in a fresh interpreter of the
# function's environment, through the image runtime's FunctionRuntime (runtime/server.py).
ONESTEP = '''
"""A one-process-per-batch driver, for dispatch-kernel's plug-in tests."""

import os
import pickle
import subprocess
import tempfile

from dispatch_kernel.drivers.base import FaaSDriver, Runs
from dispatch_kernel.runtime.protocol import load_answer
from dispatch_kernel.runtime.server import function_file

# The runtime captures file descriptors 1 and 2 for each run's logs: answer on a copy of 1.
RUN = (
    "import os, pickle, sys\\n"
    "answer = os.fdopen(os.dup(1), 'wb')\\n"
    "from dispatch_kernel.runtime.server import FunctionRuntime\\n"
    "runtime = FunctionRuntime.from_file(sys.argv[1])\\n"
    "answer.write(pickle.dumps(runtime.run_jobs(pickle.load(sys.stdin.buffer))))\\n"
    "answer.flush()\\n"
)


class OneStepDriver(FaaSDriver):
    name = "onestep"
    runs = Runs.ENVIRONMENT

    def __init__(self, settings):
        super().__init__(settings)
        self.root = tempfile.mkdtemp(prefix="onestep-")
        self.deployed = {}

    def deploy(self, function, source, artifact, progress=None):
        path = os.path.join(self.root, f"{function.org}-{function.name}.pkl")
        with open(path, "wb") as out:
            out.write(function_file(source.payload, name=function.name, convention=source.convention,
                                    code=source.code, filename=source.filename, handler=source.handler))
        self.deployed[(function.org, function.name)] = (function.digest, artifact.python, path)
        if progress:
            progress(f"onestep: {function.name} ready in {artifact.id}")

    def undeploy(self, function):
        self.deployed.pop((function.org, function.name), None)

    def is_deployed(self, function):
        entry = self.deployed.get((function.org, function.name))
        return entry is not None and entry[0] == function.digest

    def execute(self, function, jobs, on_done=None):
        _, python, path = self.deployed[(function.org, function.name)]
        done = subprocess.run([python, "-c", RUN, path], input=pickle.dumps(jobs),
                              capture_output=True, check=True, timeout=60)
        return load_answer(done.stdout)

    def close(self):
        self.deployed.clear()
'''


@pytest.fixture
def onestep_installed(tmp_path, monkeypatch):
    """The package above, installed where importlib.metadata looks: a dist-info with its entry point."""
    site = tmp_path / "site"
    (site / "onestep_driver").mkdir(parents=True)
    (site / "onestep_driver" / "__init__.py").write_text(ONESTEP)
    info = site / "onestep_driver-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onestep-driver\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[dispatch_kernel.drivers]\nonestep = onestep_driver:OneStepDriver\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{__import__('os').environ.get('PYTHONPATH', '')}")
    yield
    import sys

    sys.modules.pop("onestep_driver", None)


def add(x, y):
    return x + y


def handle(ctx, payload):
    return {"run": ctx.run_id, "payload": payload}


def test_a_driver_of_another_package_deploys_and_runs_functions(onestep_installed, home):
    assert "onestep" in plugins.names("driver")
    with dk.connect(settings=Settings(home=home, driver="onestep")) as client:
        steps: list[str] = []
        fn = client.deploy(add, progress=steps.append)
        assert fn.function.driver == "onestep" and any("onestep: add ready" in s for s in steps)
        assert fn(1, 2) == 3
        assert list(fn.map([(1, 2), (3, 4), (5, 6)])) == [3, 7, 11]
        assert fn.spawn(20, 22).result(60) == 42
        greet = client.deploy(handle, name="greet")
        run = client.invoke("greet", {"name": "Ada"})
        assert run.output == {"run": run.id, "payload": {"name": "Ada"}}
        with pytest.raises(dk.RunFunctionError, match="unsupported operand"):
            fn(1, "two")
        assert len(client.list_runs(function="add")) == 6
        greet.delete()


def test_unknown_names_and_kinds_are_clear():
    with pytest.raises(dk.InvalidRequestError, match=r"unknown driver 'nope' \(available: .*local"):
        plugins.load("driver", "nope")
    with pytest.raises(dk.InvalidRequestError, match=r"unknown event source 'nope' \(available: .*schedule"):
        plugins.load("event source", "nope")
    with pytest.raises(ValueError, match="no plug-in kind 'gadget'"):
        plugins.load("gadget", "x")
    assert plugins.names("store") == ["postgres", "sqlite"] and {"sqlite", "nats"} <= set(plugins.names("bus"))


def test_a_broken_plugin_is_reported_and_the_others_still_load(tmp_path, monkeypatch, caplog):
    site = tmp_path / "site"
    info = site / "broken_driver-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-driver\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dispatch_kernel.drivers]\nbroken = no_such_module_xyz:Driver\n")
    monkeypatch.syspath_prepend(str(site))
    with caplog.at_level(logging.WARNING, logger="dispatch_kernel.plugins"):
        with pytest.raises(dk.DispatchError, match="the driver 'broken' failed to load"):
            plugins.load("driver", "broken")
    assert "no_such_module_xyz" in caplog.text
    assert plugins.load("driver", "local").name == "local"


class _Minimal(FaaSDriver):
    """A driver that runs nothing, for what the loader and the ABC say of drivers."""

    name = "minimal"
    runs = Runs.IMAGE

    def deploy(self, function, source, artifact, progress=None) -> None:
        """Nothing to deploy."""

    def undeploy(self, function) -> None:
        """Nothing to stop."""

    def is_deployed(self, function) -> bool:
        return False

    def execute(self, function, jobs, on_done=None) -> list:
        return []

    def close(self) -> None:
        """Nothing to close."""


def test_the_test_seam_registers_for_a_block_only():
    with plugins.registered("driver", "minimal", _Minimal):
        assert plugins.load("driver", "minimal") is _Minimal and "minimal" in plugins.names("driver")
    with pytest.raises(dk.InvalidRequestError):
        plugins.load("driver", "minimal")


def test_a_driver_that_does_not_say_what_it_runs_cannot_be_made(home):
    class Vague(_Minimal):
        runs = FaaSDriver.runs  # the ABC's abstract declaration, not a value

    with pytest.raises(TypeError, match="runs"):
        Vague(Settings(home=home))


def test_each_plugin_reads_its_own_options(home):
    settings = Settings(home=home, plugin_options={"minimal": {"answer": 42}, "container": {"x": 1}})
    assert _Minimal(settings).options == {"answer": 42}
    assert _Minimal(Settings(home=home)).options == {}
    with pytest.raises(dk.InvalidRequestError, match="must be a dict"):
        Settings(home=home, plugin_options={"minimal": 5})


def test_the_builtins_loaded_without_metadata_are_our_own_entry_points():
    import importlib.metadata

    ours = importlib.metadata.distribution("dispatch-kernel").entry_points
    declared = {(ep.group, ep.name): ep.value for ep in ours}
    for (kind, name), value in plugins.BUILTINS.items():
        assert declared.get((plugins.GROUPS[kind], name)) == value, (kind, name)
        assert plugins.load(kind, name) is importlib.metadata.EntryPoint(name, value, kind).load()
