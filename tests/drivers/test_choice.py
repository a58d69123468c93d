"""One function on several drivers: a failover list, a weighted split, a pinned run, each run's
driver in its record and each driver's state on the function.

The driver that cannot deploy here is a real one with a real failure: the container driver
pointed at an engine socket that does not exist. The split across two working drivers (local
and podman containers) is in test_choice_containers.py.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

import dispatch_kernel as dk
from dispatch_kernel.drivers.choice import DriverChoice, DriverEntry, driver_option, parse_drivers
from dispatch_kernel.drivers.local import LocalDriver
from dispatch_kernel.settings import Settings

BROKEN = {"container": {"docker_host": "unix:///nonexistent/dispatch-test.sock"},
          "kubernetes": {"kubeconfig": "/nonexistent/dispatch-test-kubeconfig"}}


def add(x, y):
    return x + y


@pytest.fixture
def client(home):
    with dk.connect(settings=Settings(home=home, plugin_options=BROKEN)) as the_client:
        yield the_client


def test_a_failover_list_runs_on_the_first_driver_that_deployed(client):
    fn = client.deploy(add, drivers=["container", "local"])
    function = fn.refresh()
    assert function.status == "READY" and function.drivers == ["container", "local"]
    assert function.driver_status["local"] == {"status": "READY", "reason": ""}
    assert function.driver_status["container"]["status"] == "ERROR"
    assert "nonexistent" in function.driver_status["container"]["reason"] or \
        "No such file" in function.driver_status["container"]["reason"]
    run = fn.spawn(2, 3).wait(30)
    assert run.output == 5 and run.driver == "local"
    assert client.get_run(run.id).driver == "local"  # as stored
    assert client.list_runs(function="add")[0].driver == "local"


def test_a_pinned_run_goes_where_it_is_pinned_and_a_bad_pin_records_nothing(client):
    fn = client.deploy(add, drivers={"local": 1, "container": 1})
    assert fn.spawn(1, 1, driver="local").wait(30).driver == "local"
    before = len(client.list_runs())
    with pytest.raises(dk.ConflictError, match="driver 'container' of this function is not ready"):
        fn.spawn(1, 1, driver="container")
    with pytest.raises(dk.InvalidRequestError, match="'kubernetes' is not one of"):
        fn.spawn(1, 1, driver="kubernetes")
    assert len(client.list_runs()) == before


def test_one_driver_pins_to_itself_only(client):
    fn = client.deploy(add)
    run = fn.spawn(1, 2, driver="local").wait(30)
    assert run.output == 3 and run.driver == "local"
    assert fn.spawn(4, 4).wait(30).driver == "local"
    with pytest.raises(dk.InvalidRequestError, match="not one of the drivers of add"):
        fn.spawn(1, 2, driver="container")
    assert fn.refresh().driver_status == {"local": {"status": "READY", "reason": ""}}


def test_when_every_driver_fails_the_deploy_fails_with_each_reason(client):
    with pytest.raises(dk.DeployError, match="no driver could deploy it: container: ") as caught:
        client.deploy(add, name="nowhere", drivers=["container", "kubernetes"])
    assert "kubernetes: " in str(caught.value)
    function = client.get_function("nowhere")
    assert function.status == "ERROR" and "container" in function.reason and "kubernetes" in function.reason
    assert {s["status"] for s in function.driver_status.values()} == {"ERROR"}
    assert caught.value.function is not None


@pytest.mark.parametrize("drivers, message", [
    ({}, None),  # empty: the default single driver
    ({"local": -1, "container": 1}, "must be a number >= 0"),
    ({"local": 0, "container": 0}, "must not all be 0"),
    (["local", "local"], "names a driver twice"),
    ({"local": "lots", "container": 1}, "must be a number >= 0"),
    (["local", "no such"], "not a valid driver name"),
    (["local", "nope"], "unknown driver 'nope'"),
    (42, "drivers must be"),
])
def test_bad_drivers_are_refused_and_store_nothing(client, drivers, message):
    if message is None:
        assert client.deploy(add, drivers=drivers).function.driver == "local"
        return
    with pytest.raises(dk.InvalidRequestError, match=message):
        client.deploy(add, name="bad", drivers=drivers)
    with pytest.raises(dk.NotFoundError):
        client.get_function("bad")


def test_driver_and_drivers_together_are_refused(client):
    with pytest.raises(dk.InvalidRequestError, match="not both"):
        client.deploy(add, driver="local", drivers=["local", "container"])


def test_the_text_form_of_the_cli_and_the_magic():
    assert driver_option(None) == {}
    assert driver_option("local") == {"driver": "local"}
    assert driver_option("kubernetes,local") == {"drivers": ["kubernetes", "local"]}
    assert driver_option("local=0.9, kubernetes=0.1") == {"drivers": {"local": 0.9, "kubernetes": 0.1}}
    with pytest.raises(dk.InvalidRequestError, match="give every driver a weight"):
        driver_option("local=0.9,kubernetes")
    with pytest.raises(dk.InvalidRequestError, match="must be a number"):
        parse_drivers("local=much,kubernetes=1")


def _choice(mode, weights, home):
    driver = LocalDriver(Settings(home=home))
    return DriverChoice(mode, [DriverEntry(name, driver, weight) for name, weight in weights.items()]), driver


def test_a_split_follows_its_weights_and_a_failed_driver_is_left_out(home):
    random.seed(7)
    choice, driver = _choice("split", {"a": 0.9, "b": 0.1}, home)
    try:
        counts = Counter(choice.pick()[0] for _ in range(20000))
        assert 0.88 < counts["a"] / 20000 < 0.92
        choice.mark_down("a", "its last runs failed: boom")
        assert {choice.pick()[0] for _ in range(200)} == {"b"}
        assert choice.status()["a"]["reason"] == "its last runs failed: boom"
        assert choice.pick("a")[0] == "a"  # a pin still goes there: it was asked for
    finally:
        driver.close()


def test_a_failover_list_moves_on_when_its_first_driver_fails_and_comes_back(home, monkeypatch):
    import dispatch_kernel.drivers.choice as choice_module

    choice, driver = _choice("failover", {"a": 1, "b": 1}, home)
    try:
        assert {choice.pick()[0] for _ in range(50)} == {"a"}
        monkeypatch.setattr(choice_module, "DOWN_SECONDS", 0.05)
        choice.mark_down("a", "down")
        assert choice.pick()[0] == "b"
        import time
        time.sleep(0.1)
        assert choice.pick()[0] == "a"
    finally:
        driver.close()

