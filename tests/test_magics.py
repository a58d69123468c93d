"""%%dispatch and %dispatch in a real IPython shell: what a notebook user sees."""

import json

import pytest

import dispatch_kernel as dk
from dispatch_kernel.magics import NotebookFunction

from .shell import run, shown


def client_of(ip):
    return ip.magics_manager.registry["DispatchMagics"].client


def test_a_cell_is_run_then_deployed_and_its_name_rebound(ip):
    result, captured = run(ip, "%%dispatch\ndef add(x, y):\n    return x + y\n")
    assert result.success, captured.stderr
    add = ip.user_ns["add"]
    assert isinstance(add, NotebookFunction)
    assert add(1, 2) == 3 and add.local(1, 2) == 3
    assert list(add.map([(1, 1), (2, 2)])) == [2, 4]
    assert add.spawn(5, 5).result(30) == 10
    assert [r.status for r in add.runs()][:1] == ["SUCCEEDED"]
    card = captured.outputs[-1].data  # the function card, as saved in the notebook
    assert "add" in card["text/plain"] and "READY" in card["text/plain"]
    assert "READY" in card["text/html"]


def test_handle_is_preferred_then_the_last_function_then_handler(ip):
    cell = "def helper(x):\n    return x\n\ndef handle(ctx, payload):\n    return helper(payload)\n"
    run(ip, "%%dispatch echo\n" + cell)
    assert ip.user_ns["echo"]({"a": 1}) == {"a": 1}
    assert client_of(ip).get_function("echo").handler == "handle"
    run(ip, "%%dispatch\ndef first():\n    return 1\n\ndef second():\n    return 2\n")
    assert ip.user_ns["second"]() == 2 and not isinstance(ip.user_ns["first"], NotebookFunction)
    run(ip, "%%dispatch picked --handler first\ndef first():\n    return 1\n\ndef second():\n    return 2\n")
    assert ip.user_ns["picked"]() == 1


def test_an_unchanged_cell_deploys_nothing_new_and_an_edit_redeploys(ip):
    cell = "%%dispatch\ndef square(x):\n    return x * x\n"
    run(ip, cell)
    revision = client_of(ip).get_function("square").revision
    run(ip, cell)
    assert client_of(ip).get_function("square").revision == revision
    run(ip, "%%dispatch\ndef square(x):\n    return x ** 2 + 1\n")
    assert client_of(ip).get_function("square").revision > revision
    assert ip.user_ns["square"](3) == 10


def test_every_option_reaches_the_function(ip, tmp_path):
    client_of(ip).create_secret("s1", {"k": "v"})
    client_of(ip).create_secret("s2", {"k": "w"})
    schema_file = tmp_path / "out.json"
    schema_file.write_text(json.dumps({"type": "object"}))
    line = (
        "%%dispatch opts --timeout 500ms --memory 256M --secret s1 --secret s2 "
        "--schema-in '{\"type\": \"object\", \"required\": [\"name\"]}' "
        f"--schema-out {schema_file} --min-workers 1 --max-workers 3 --idle-timeout 2m "
        "--driver local --requirements 'jsonschema>=4'"
    )
    result, captured = run(ip, line + "\ndef handle(ctx, payload):\n    return {'n': payload['name']}\n")
    assert result.success, captured.stderr
    function = client_of(ip).get_function("opts")
    assert function.timeout == 0.5 and function.resources["memory"] == 256 * 1024 * 1024
    assert function.secrets == ["s1", "s2"]
    assert function.schema == {"in": {"type": "object", "required": ["name"]}, "out": {"type": "object"}}
    assert function.scaling["min_workers"] == 1 and function.scaling["max_workers"] == 3
    assert function.scaling["idle_timeout"] == 120 and function.driver == "local"
    assert "jsonschema>=4" in function.requirements
    assert ip.user_ns["opts"]({"name": "x"}) == {"n": "x"}
    with pytest.raises(dk.RunInputError):
        ip.user_ns["opts"]({})


def test_cancel_stops_a_run_that_has_not_finished(ip):
    run(ip, "%%dispatch\ndef snooze(seconds):\n    import time\n    time.sleep(seconds)\n    return seconds\n")
    pending = client_of(ip).function("snooze").spawn(30)  # queued, waiting for a worker, or running
    _, captured = run(ip, f"%dispatch cancel {pending.id}")
    assert f"run {pending.id} of snooze is CANCELLED" in captured.stdout, captured.stderr
    assert client_of(ip).get_run(pending.id).status == "CANCELLED"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%dispatch --timeout", "expected one argument"),
        ("%%dispatch --no-such-option 1", "unrecognized arguments"),
        ("%%dispatch --timeout soon", "not a duration"),
        ("%%dispatch --secret missing", "no secret named 'missing'"),
        ("%%dispatch --driver nope", "unknown driver 'nope'"),
        ("%%dispatch --schema-in '{bad'", "--schema-in is not valid JSON"),
        ("%%dispatch --schema-in /no/such/file.json", "neither inline JSON nor a file"),
        ("%%dispatch --handler ghost", "no function named 'ghost'"),
        ("%%dispatch --image ghost", "no image named 'ghost'"),
    ],
)
def test_bad_options_are_one_clear_usage_error(ip, line, message):
    result, captured = run(ip, line + "\ndef f():\n    return 1\n")
    assert isinstance(result.error_in_exec, Exception)
    assert "UsageError" in captured.stderr and message in captured.stderr
    assert "Traceback" not in captured.stderr
    assert client_of(ip).list_functions() == []


def test_a_bad_option_shows_the_usage_line(ip):
    _, captured = run(ip, "%%dispatch --max-workers many\ndef f():\n    return 1\n")
    assert "usage: %%dispatch" in captured.stderr and "invalid int value" in captured.stderr


def test_a_cell_that_fails_deploys_nothing(ip):
    result, _ = run(ip, "%%dispatch\ndef f():\n    return 1\nraise ValueError('cell broke')\n")
    assert isinstance(result.error_in_exec, ValueError)
    assert client_of(ip).list_functions() == []


def test_a_cell_without_a_function_is_a_usage_error(ip):
    _, captured = run(ip, "%%dispatch\nx = 1\n")
    assert "defines no function" in captured.stderr


def test_help(ip):
    _, captured = run(ip, "%%dispatch?")
    assert "--schema-in" in captured.stdout and "%dispatch runs" in captured.stdout
    _, captured = run(ip, "%dispatch help")
    assert "%dispatch invoke NAME [JSON]" in captured.stdout


def test_line_magics(ip):
    run(ip, "%%dispatch\ndef shout(word):\n    print('shouting')\n    return word.upper()\n")
    _, captured = run(ip, "%dispatch functions")
    assert "shout" in shown(captured) and "READY" in shown(captured)
    _, captured = run(ip, '%dispatch invoke shout ["hey"]')
    assert "HEY" in shown(captured) and "SUCCEEDED" in shown(captured)
    run_id = client_of(ip).list_runs(function="shout")[0].id
    _, captured = run(ip, f"%dispatch logs {run_id}")
    assert "shouting" in captured.stdout
    _, captured = run(ip, f"%dispatch cancel {run_id}")
    assert "already finished (SUCCEEDED)" in captured.stderr
    _, captured = run(ip, "%dispatch runs shout --limit 5")
    assert run_id in shown(captured)
    _, captured = run(ip, "%dispatch secret token value=abc other=1")
    assert "keys: other, value" in captured.stdout
    run(ip, "%dispatch secret token value=xyz")
    assert client_of(ip).get_secret("token").values == {"value": "xyz"}
    _, captured = run(ip, "%dispatch status")
    assert "functions: 1 (shout)" in captured.stdout
    _, captured = run(ip, "%dispatch delete shout")
    assert "deleted function shout" in captured.stdout
    assert not isinstance(ip.user_ns["shout"], NotebookFunction)
    assert ip.user_ns["shout"]("x") == "X"  # the cell's own function again


@pytest.mark.parametrize("typed", [
    '{"name": "Lin"}',                 # bare, as JSON is written
    """'{"name": "Lin"}'""",           # shell-quoted, as %%dispatch --schema-in '...' needs
    """  '{"name": "Lin"}'  """,
])
def test_invoke_takes_the_input_bare_or_shell_quoted(ip, typed):
    run(ip, "%%dispatch\ndef greet(name):\n    return 'hello ' + name\n")
    result, captured = run(ip, f"%dispatch invoke greet {typed}")
    assert result.success, captured.stderr
    [record] = client_of(ip).list_runs(function="greet")
    assert record.input == {"name": "Lin"} and record.output == "hello Lin"


def test_invoke_reads_the_input_from_a_file_and_quoted_strings(ip, tmp_path):
    run(ip, "%%dispatch\ndef handle(ctx, payload):\n    return payload\n")
    (tmp_path / "in put.json").write_text('{"from": "file"}')
    run(ip, f"%dispatch invoke handle '{tmp_path / 'in put.json'}'")
    run(ip, '%dispatch invoke handle "Lin"')  # a bare JSON string
    run(ip, """%dispatch invoke handle '"Lin"'""")  # the same, shell-quoted
    outputs = [r.output for r in reversed(client_of(ip).list_runs(function="handle"))]
    assert outputs == [{"from": "file"}, "Lin", "Lin"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%dispatch invoke f '{bad'", "not valid JSON"),
        ("%dispatch invoke f '{\"a\": 1}' extra", "not valid JSON"),
        ("%dispatch invoke ghost", "no function named 'ghost'"),
        ("%dispatch runs ghost", "no function named 'ghost'"),
        ("%dispatch logs nope", "no run with id 'nope'"),
        ("%dispatch cancel nope", "no run with id 'nope'"),
        ("%dispatch delete ghost", "no function named 'ghost'"),
        ("%dispatch frobnicate", "unknown command 'frobnicate'"),
        ("%dispatch invoke f {bad", "not valid JSON"),
        ("%dispatch secret s novalue", "expected key=value"),
        ("%dispatch runs --limit lots", "invalid int value"),
    ],
)
def test_line_magic_errors_are_one_clear_sentence(ip, line, message):
    _, captured = run(ip, line)
    assert message in captured.stderr and "Traceback" not in captured.stderr


def test_connect_points_the_magics_at_a_server(ip, tmp_path):
    from tests.server.live import LiveServer

    server = LiveServer(tmp_path / "server-home", tmp_path / "server")
    try:
        _, captured = run(ip, f"%dispatch connect {server.url} --token {server.token}")
        assert server.url in captured.stdout
        result, captured = run(ip, "%%dispatch\ndef triple(x):\n    return 3 * x\n")
        assert result.success, captured.stderr
        assert ip.user_ns["triple"](2) == 6
        # The function lives on the server: a fresh REST client sees it and its run.
        with dk.connect(server.url, token=server.token) as remote:
            assert [f.name for f in remote.list_functions()] == ["triple"]
            assert [r.output for r in remote.list_runs(function="triple")] == [6]
        _, captured = run(ip, "%dispatch connect")
        assert "embedded" in captured.stdout
        assert client_of(ip).list_functions() == []  # back on this kernel's own core
    finally:
        server.stop()


def test_several_drivers_from_the_cell_a_failover_list_and_a_split(ip, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/dispatch-test-kubeconfig")  # no cluster: that driver fails
    result, captured = run(ip, "%%dispatch add --driver kubernetes,local\ndef add(x, y):\n    return x + y\n")
    assert result.success, captured.stderr
    function = client_of(ip).get_function("add")
    assert function.drivers == ["kubernetes", "local"] and function.status == "READY"
    assert function.driver_status["kubernetes"]["status"] == "ERROR"
    assert "no Kubernetes cluster" in function.driver_status["kubernetes"]["reason"]
    assert ip.user_ns["add"].spawn(1, 2).wait(30).driver == "local"
    result, captured = run(ip, "%%dispatch plus --driver local=0.9,kubernetes=0.1\ndef plus(x, y):\n    return x + y\n")
    assert result.success, captured.stderr
    assert client_of(ip).get_function("plus").drivers == {"local": 0.9, "kubernetes": 0.1}
    result, captured = run(ip, "%%dispatch minus --driver local=0.9,kubernetes\ndef minus(x):\n    return -x\n")
    assert "UsageError" in captured.stderr and "give every driver a weight" in captured.stderr
