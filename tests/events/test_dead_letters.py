"""Dead letters on every face: the in-process and the REST client (one test over both), the CLI
and the magics. An event whose function is missing is given up after its subscription's
max_attempts; once the function is back, each face replays the letter as a new run tagged with
the letter's id, and the letter leaves the list."""

from __future__ import annotations

import json
import time

import pytest

from dispatch_kernel.model import NotFoundError, RunStatus
from tests.server.live import LiveServer, connected
from tests.shell import run as run_cell
from tests.test_cli import assert_one_line_error, dispatch, workdir  # noqa: F401  (the fixture)

from .helpers import handle

REPLAY_TAG = "dispatch/replay-of"


def _letters(client, count, subscription=None, timeout=30.0):
    """The dead letters once there are `count` of them (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        letters = client.dead_letters(subscription)
        if len(letters) >= count:
            return letters
        assert time.monotonic() < deadline, f"{len(letters)} of {count} dead letters"
        time.sleep(0.05)


def _give_up(client, function="on_order", subscription="orders", events=2):
    """A subscription whose function is gone: each event emitted becomes a dead letter."""
    client.deploy(handle, name=function)
    client.subscribe(function, event_type="order.*", name=subscription, max_attempts=1)
    client.delete_function(function)
    emitted = [client.emit("order.created", {"n": n}, source="shop") for n in range(events)]
    return emitted, _letters(client, events, subscription)


@pytest.fixture(params=["local", "rest"])
def client(request, home, tmp_path):
    with connected(request.param, home, tmp_path / "server") as the_client:
        yield the_client


def test_dead_letters_are_listed_and_replayed_over_either_client(client):
    emitted, letters = _give_up(client)
    assert [letter["event"]["id"] for letter in letters] == [e["id"] for e in emitted]  # oldest first
    for letter in letters:
        assert letter["subscription"] == "orders" and letter["attempts"] == 1
        assert "on_order" in letter["error"] and letter["id"]
    assert len({letter["id"] for letter in letters}) == 2
    assert client.dead_letters("orders") == letters
    with pytest.raises(NotFoundError):
        client.dead_letters("ghost")

    # the function is still missing: the replay says so and the letter stays
    with pytest.raises(NotFoundError, match="on_order"):
        client.replay_dead_letter(letters[0]["id"])
    assert client.dead_letters() == letters

    client.deploy(handle, name="on_order")
    replay = client.replay_dead_letter(letters[0]["id"])
    assert replay.function == "on_order" and replay.tags == {REPLAY_TAG: letters[0]["id"]}
    assert replay.id != letters[0]["id"] and replay.event["id"] == emitted[0]["id"]
    done = client.wait_run(replay.id, timeout=30)
    assert done.status == RunStatus.SUCCEEDED and done.output["payload"] == {"n": 0}
    assert client.get_run(replay.id).tags == {REPLAY_TAG: letters[0]["id"]}  # as stored
    assert client.dead_letters() == letters[1:]  # replayed: no longer a dead letter
    with pytest.raises(NotFoundError, match="no dead letter"):
        client.replay_dead_letter(letters[0]["id"])  # not twice
    with pytest.raises(NotFoundError, match="no dead letter"):
        client.replay_dead_letter("no-such-letter")

    client.delete_subscription("orders")  # a letter whose subscription is gone cannot be replayed
    with pytest.raises(NotFoundError, match="subscription"):
        client.replay_dead_letter(letters[1]["id"])
    assert [r.id for r in client.list_runs(function="on_order")] == [replay.id]  # nothing else ran


def test_dead_letters_in_the_magics(ip):
    client = ip.magics_manager.registry["DispatchMagics"].client
    _, letters = _give_up(client, events=1)
    result, out = run_cell(ip, "%dispatch deadletters")
    assert result.success and letters[0]["id"] in out.stdout and "orders" in out.stdout
    assert "order.created" in out.stdout and "1 attempts" in out.stdout
    result, out = run_cell(ip, "%dispatch deadletters orders")
    assert letters[0]["id"] in out.stdout
    result, out = run_cell(ip, "%dispatch deadletters ghost")
    assert not result.success and "ghost" in str(result.error_in_exec)
    client.deploy(handle, name="on_order")
    result, out = run_cell(ip, f"%dispatch replay {letters[0]['id']}")
    assert result.success and f"dead letter {letters[0]['id']} replayed as run " in out.stdout
    [replayed] = client.list_runs(function="on_order")
    assert replayed.tags == {REPLAY_TAG: letters[0]["id"]} and replayed.id in out.stdout
    result, out = run_cell(ip, "%dispatch deadletters")
    assert "no dead letters" in out.stdout
    result, out = run_cell(ip, f"%dispatch replay {letters[0]['id']}")
    assert not result.success and "no dead letter" in str(result.error_in_exec)


HANDLE = "def handle(ctx, payload):\n    return {'payload': payload}\n"


@pytest.mark.parametrize("where", ["embedded", "server"])
def test_dead_letters_on_the_command_line(workdir, tmp_path, where):
    server = None
    if where == "server":
        server = LiveServer(tmp_path / "server-home", tmp_path / "server-work")
        dispatch("login", server.url, "--token", server.token)
    try:
        (workdir / "on_order.py").write_text(HANDLE)
        dispatch("create", "function", "on_order", "on_order.py")
        dispatch("create", "subscription", "on_order", "--event-type", "order.*", "--name", "orders",
                 "--max-attempts", "1")
        dispatch("delete", "function", "on_order")
        event = json.loads(dispatch("emit", "order.created", "--data", '{"n": 1}', "-o", "json").stdout)
        deadline = time.monotonic() + 30
        while not (letters := json.loads(dispatch("get", "deadletters", "-o", "json").stdout)):
            assert time.monotonic() < deadline, "no dead letter"
            time.sleep(0.2)
        [letter] = letters
        assert letter["event"]["id"] == event["id"] and letter["subscription"] == "orders"
        table = dispatch("get", "deadletters", "orders").stdout.splitlines()
        assert table[0].split()[:3] == ["ID", "SUBSCRIPTION", "EVENT"]
        assert table[1].split()[:5] == [letter["id"], "orders", "order.created", event["id"], "1"]
        assert_one_line_error(dispatch("get", "deadletters", "ghost", ok=False), "ghost")
        assert_one_line_error(dispatch("replay", letter["id"], ok=False), "on_order")  # still missing

        dispatch("create", "function", "on_order", "on_order.py")
        replayed = dispatch("replay", letter["id"], "--wait")
        assert f"dead letter {letter['id']} replayed as run " in replayed.stdout and "SUCCEEDED" in replayed.stdout
        [run] = json.loads(dispatch("get", "runs", "on_order", "-o", "json").stdout)
        assert run["tags"] == {REPLAY_TAG: letter["id"]} and run["output"] == {"payload": {"n": 1}}
        assert dispatch("get", "deadletters").stdout.strip() == "no dead letters"
        assert_one_line_error(dispatch("replay", letter["id"], ok=False), "no dead letter")
    finally:
        if server is not None:
            server.stop()
