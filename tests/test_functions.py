"""Deploying functions and running them through the in-process client: what a user sees."""

import threading
import time

import pytest

import dispatch_kernel as dk


def add(x, y):
    return x + y


def handle(ctx, payload):
    return {"greeting": f"hello {payload['name']}, {ctx.secrets['greeting']['word']}"}


@pytest.fixture(params=["sqlite", "postgres"])
def client(request, home):
    """The embedded client on each store: SQLite in the home, or a PostgreSQL database."""
    if request.param == "sqlite":
        with dk.connect(home=home) as the_client:
            yield the_client
        return
    from tests.postgres_support import fresh_database

    with fresh_database() as dsn, dk.connect(home=home, store=dsn) as the_client:
        yield the_client


NAME_SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


def test_deploy_call_spawn_map(client):
    fn = client.deploy(add)
    assert fn.name == "add"
    assert fn.function.status == dk.FunctionStatus.READY
    assert fn(1, 2) == 3
    run = fn.spawn(3, 4)
    assert run.id
    assert run.wait(timeout=30).status == dk.RunStatus.SUCCEEDED
    assert run.output == 7
    assert list(fn.map([(1, 2), (3, 4)])) == [3, 7]
    assert list(fn.map((i, i) for i in range(100))) == [2 * i for i in range(100)]


def test_each_run_is_recorded_with_input_output_logs_and_times(client):
    def shout(word):
        print("saying", word)
        import sys

        print("to stderr", file=sys.stderr)
        return word.upper()

    fn = client.deploy(shout)
    assert fn("hi") == "HI"
    (run,) = client.list_runs(function="shout")
    assert run.status == dk.RunStatus.SUCCEEDED
    assert run.input == ["hi"] and run.output == "HI"
    assert run.logs == {"stdout": "saying hi\n", "stderr": "to stderr\n"}
    assert run.queued <= run.started <= run.finished
    assert client.get_run(run.id).output == "HI"


def test_output_written_by_c_code_and_subprocesses_is_captured(client):
    def loud():
        import os
        import subprocess

        os.write(1, b"from fd 1\n")
        subprocess.run(["echo", "from a child"], check=True)
        return "done"

    fn = client.deploy(loud)
    run = fn.spawn().wait(30)
    assert "from fd 1\n" in run.logs["stdout"] and "from a child\n" in run.logs["stdout"]


def test_dispatch_convention_with_secret_and_schema(client):
    client.create_secret("greeting", {"word": "welcome"})
    hello = client.deploy(handle, name="hello", secrets=["greeting"], timeout=5, schema_in=NAME_SCHEMA)
    assert hello.function.convention == "dispatch"
    assert hello({"name": "Ada"}) == {"greeting": "hello Ada, welcome"}
    run = client.invoke("hello", {"name": "Ada"}, wait=True)
    assert run.status == "SUCCEEDED" and run.output == {"greeting": "hello Ada, welcome"}


def test_json_input_maps_to_arguments_of_plain_functions(client):
    def describe(a, b=0, *rest):
        return [a, b, list(rest)]

    client.deploy(describe)
    assert client.invoke("describe", {"a": 1, "b": 2}).output == [1, 2, []]
    assert client.invoke("describe", [1, 2, 3, 4]).output == [1, 2, [3, 4]]
    assert client.invoke("describe", 7).output == [7, 0, []]


def test_invalid_input_is_an_input_error_before_any_code_runs(client, tmp_path):
    marker = tmp_path / "ran"

    def record(ctx, payload):
        open(marker, "w").close()
        return payload

    fn = client.deploy(record, schema_in=NAME_SCHEMA)
    with pytest.raises(dk.RunInputError) as caught:
        fn({"name": 5})
    error = caught.value
    assert error.type == dk.ErrorType.INPUT
    assert "$.name" in str(error) and "not of type 'string'" in str(error)
    assert error.run.status == dk.RunStatus.FAILED
    assert not marker.exists()
    run = client.invoke("record", {"nom": "x"})
    assert run.status == "FAILED" and run.error.type == "InputError" and "'name' is a required" in run.error.message
    stored = client.list_runs(function="record", status="FAILED")
    assert len(stored) == 2 and all(r.error.type == "InputError" for r in stored)


def test_invalid_output_is_a_function_error(client):
    def wrong():
        return {"count": "three"}

    fn = client.deploy(wrong, schema_out={"type": "object", "properties": {"count": {"type": "integer"}}})
    with pytest.raises(dk.RunFunctionError, match="output invalid against schema at \\$.count"):
        fn()


def test_an_exception_is_a_function_error_with_the_functions_own_stack_trace(client):
    def divide(a, b):
        return helper(a, b)

    def helper(a, b):
        return a / b

    fn = client.deploy(divide)
    with pytest.raises(dk.RunFunctionError) as caught:
        fn(1, 0)
    error = caught.value
    assert error.type == "FunctionError"
    assert "ZeroDivisionError: division by zero" in str(error)
    assert "in divide" in error.stacktrace and "in helper" in error.stacktrace
    assert "return a / b" in error.stacktrace  # the failing line itself is quoted
    assert __file__ in error.stacktrace  # and the file it was written in is named
    assert "dispatch_kernel" not in error.stacktrace  # none of the worker's own frames
    assert fn(4, 2) == 2


def test_map_raises_on_the_first_failure_or_returns_exceptions(client):
    def invert(x):
        return 1 / x

    fn = client.deploy(invert)
    results = list(fn.map([1, 0, 2], return_exceptions=True))
    assert results[0] == 1 and results[2] == 0.5
    assert isinstance(results[1], dk.RunFunctionError)
    with pytest.raises(dk.RunFunctionError):
        list(fn.map([1, 0, 2]))


def test_bad_deploy_options_are_clear_errors_that_create_nothing(client):
    with pytest.raises(dk.NotFoundError, match="no secret named 'missing'"):
        client.deploy(add, secrets=["missing"])
    with pytest.raises(dk.InvalidRequestError, match="schema_in is not a valid JSON Schema"):
        client.deploy(add, schema_in={"type": "no-such-type"})
    with pytest.raises(dk.InvalidRequestError, match="unknown driver 'nope'"):
        client.deploy(add, driver="nope")
    with pytest.raises(dk.InvalidRequestError, match="not a duration"):
        client.deploy(add, timeout="soon")
    with pytest.raises(dk.InvalidRequestError, match="not a valid function name"):
        client.deploy(lambda: 1)
    assert client.list_functions() == []


def test_unknown_function_and_run_are_not_found(client):
    with pytest.raises(dk.NotFoundError, match="no function named 'ghost'"):
        client.call("ghost")
    with pytest.raises(dk.NotFoundError):
        client.get_run("0000")


def test_get_list_delete_functions(client):
    client.deploy(add)
    client.deploy(add, name="plus")
    assert [f.name for f in client.list_functions()] == ["add", "plus"]
    assert client.get_function("plus").handler == "add"
    client.delete_function("plus")
    assert [f.name for f in client.list_functions()] == ["add"]
    with pytest.raises(dk.NotFoundError):
        client.call("plus", 1, 2)
    assert client.call("add", 1, 2) == 3


def test_lifecycle_and_idempotent_redeploy(client):
    def add(x, y):
        return x + y

    first = client.deploy(add)
    again = client.deploy(add)
    assert again.function.revision == first.function.revision  # nothing new deployed

    def add(x, y):  # noqa: F811  (an edited version of the same function)
        return x + y + 100

    changed = client.deploy(add)
    assert changed.function.revision > first.function.revision
    assert changed.function.status == "READY"
    assert changed(1, 2) == 103


def test_a_failed_deploy_leaves_the_function_in_error_with_the_reason(client):
    def needs_missing():
        return 1

    with pytest.raises(dk.DeployError) as caught:
        client.deploy(needs_missing, requirements=["no-such-distribution-xyz==0.0.1"])
    function = client.get_function("needs_missing")
    assert function.status == dk.FunctionStatus.ERROR
    assert "no-such-distribution-xyz" in function.reason
    assert caught.value.function.status == "ERROR"
    with pytest.raises(dk.ConflictError, match="not ready"):
        client.call("needs_missing")


def test_redeploy_while_runs_are_in_flight(client):
    def version(delay):
        import time

        time.sleep(delay)
        return 1

    fn = client.deploy(version, max_workers=2)
    in_flight = [fn.spawn(0.5) for _ in range(2)]
    time.sleep(0.1)

    def version(delay):  # noqa: F811
        return 2

    client.deploy(version, max_workers=2)
    assert fn(0) == 2  # new runs use the new code at once
    assert [run.result(30) for run in in_flight] == [1, 1]  # old runs finish on the old code
    assert fn(0) == 2


def test_concurrent_calls_from_many_threads(client):
    fn = client.deploy(add, max_workers=4)
    results: dict[int, int] = {}
    errors = []

    def caller(i: int) -> None:
        try:
            for j in range(20):
                results[i * 100 + j] = fn(i, j)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert results == {i * 100 + j: i + j for i in range(16) for j in range(20)}
    assert len(client.list_runs(function="add", limit=1000)) == 320


def test_functions_outlive_the_process_that_deployed_them(home):
    with dk.connect(home=home) as first:
        first.deploy(add)
    with dk.connect(home=home) as second:
        assert second.call("add", 2, 3) == 5
        assert second.function("add")(4, 4) == 8


def test_invoke_without_waiting_returns_the_queued_run(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return "awake"

    client.deploy(nap)
    run = client.invoke("nap", [0.2], wait=False)
    assert run.status in ("QUEUED", "RUNNING")
    assert client.get_run(run.id).status in ("QUEUED", "RUNNING")
    finished = client.wait_run(run.id, timeout=30)
    assert finished.status == "SUCCEEDED" and finished.output == "awake"
    assert client.get_run(run.id).output == "awake"


def test_waiting_too_little_is_a_timeout_error(client):
    def nap(seconds):
        import time

        time.sleep(seconds)

    fn = client.deploy(nap)
    run = fn.spawn(1)
    with pytest.raises(TimeoutError, match="did not finish within 0.05s"):
        run.wait(timeout=0.05)
    assert run.wait(30).status == "SUCCEEDED"


def test_watchers_see_every_status_change(client):
    seen = []
    stop = client.watch_runs(lambda run: seen.append((run.id, str(run.status))))
    fn = client.deploy(add)
    fn(1, 2)
    run_id = client.list_runs(function="add")[0].id
    assert [status for rid, status in seen if rid == run_id] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    stop()
    fn(3, 4)
    assert len(seen) == 3


def test_submitted_runs_resolve_to_their_records_and_errors(client):
    core = client.dispatch
    client.deploy(add)
    client.deploy(handle, name="greet", schema_in=NAME_SCHEMA, secrets=[])  # no secret: fails at run
    run = core.runs.submit("add", [1, 2], org="default").result(30)
    assert (run.status, run.output) == (dk.RunStatus.SUCCEEDED, 3)
    assert client.get_run(run.id).output == 3
    assert core.runs.submit("add", python=((2,), {"y": 5}), org="default").result(30).output == 7
    with pytest.raises(dk.NotFoundError):
        core.runs.submit("nothing-here", [1], org="default").result(30)
    refused = core.runs.submit("greet", {"name": 3}, org="default").result(30)
    assert refused.status == dk.RunStatus.FAILED and refused.error.type == "InputError"
    with pytest.raises(dk.InvalidRequestError):  # handle(ctx, payload) takes one payload
        core.runs.submit("greet", python=((1, 2), {}), org="default").result(30)


def test_submitted_runs_that_queue_share_a_batch_and_are_answered_as_each_ends(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    client.deploy(nap, max_workers=1)
    core = client.dispatch
    first = core.runs.submit("nap", [0.5], org="default")  # takes the function's only lane
    time.sleep(0.1)
    quick = [core.runs.submit("nap", [0], org="default") for _ in range(3)]
    slow = core.runs.submit("nap", [3], org="default")
    for future in quick:  # queued behind `first`, then one batch with `slow` last
        assert future.result(30).output == 0
    assert not slow.done(), "the quick runs of a batch are answered before its last one ends"
    assert first.result(30).output == 0.5
    assert slow.result(30).output == 3
    runs = client.list_runs(function="nap")
    assert len(runs) == 5 and all(r.status == dk.RunStatus.SUCCEEDED for r in runs)


def test_many_submitted_runs_from_many_threads_each_get_their_own_answer(client):
    client.deploy(add, max_workers=2)
    core = client.dispatch
    futures: dict[int, object] = {}

    def submit(start: int) -> None:
        for i in range(start, start + 250):
            futures[i] = core.runs.submit("add", [i, 1], org="default")

    threads = [threading.Thread(target=submit, args=(n * 250,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(futures) == list(range(1000))
    assert all(futures[i].result(60).output == i + 1 for i in range(1000))
    assert len({futures[i].result().id for i in range(1000)}) == 1000


def test_a_run_sharing_its_worker_with_a_batch_cannot_be_stopped_alone(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    fn = client.deploy(nap, max_workers=1)
    outputs: list = []
    mapper = threading.Thread(target=lambda: outputs.extend(fn.map([0.5, 0.5, 0.5])))
    mapper.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = [r for r in client.list_runs(function="nap") if r.status == dk.RunStatus.RUNNING]
        if running:
            break
        time.sleep(0.01)
    with pytest.raises(dk.ConflictError, match="a batch"):
        client.cancel_run(running[0].id)
    mapper.join(30)
    assert outputs == [0.5, 0.5, 0.5]


def test_large_values_right_after_small_ones_travel_whole(client):
    # After a quick answer the worker and the caller poll their sockets for a while; a large
    # message sent next must still go out whole (not stop partway on a non-blocking socket).
    def echo(value, seconds=0):
        import time

        time.sleep(seconds)
        return value

    fn = client.deploy(echo, max_workers=1)
    big = "x" * (8 << 20)
    for _ in range(5):
        assert fn("small") == "small"
        assert len(fn(big)) == len(big)  # 8 MiB in, 8 MiB out
    assert [len(v) for v in fn.map([(big, 0), ("y", 0.3)])] == [len(big), 1]


def test_a_run_waiting_for_a_busy_worker_is_cancelled_at_once(client):
    def nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    fn = client.deploy(nap, max_workers=1)
    busy = fn.spawn(20)
    deadline = time.monotonic() + 30
    while client.get_run(busy.id).status != dk.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = fn.spawn(0)
    time.sleep(0.2)  # in the driver, waiting for the one worker
    started = time.monotonic()
    cancelled = waiting.cancel()
    assert time.monotonic() - started < 5
    assert cancelled.status == dk.RunStatus.CANCELLED
    assert cancelled.error.message == "the run was cancelled before it reached a worker"
    assert client.get_run(waiting.id).status == dk.RunStatus.CANCELLED  # as stored
    assert busy.cancel().status == dk.RunStatus.CANCELLED
    assert fn(0) == 0


def test_several_drivers_and_a_pinned_run(client, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/dispatch-test-kubeconfig")  # no cluster: that driver fails
    fn = client.deploy(add, name="add2", drivers=["kubernetes", "local"])
    function = fn.refresh()
    assert function.drivers == ["kubernetes", "local"] and function.status == "READY"
    assert function.driver_status["kubernetes"]["status"] == "ERROR"
    run = fn.spawn(2, 3, driver="local").wait(30)
    assert run.output == 5 and run.driver == "local"
    assert client.invoke("add2", [1, 1]).driver == "local"
    with pytest.raises(dk.ConflictError, match="not ready"):
        fn.spawn(1, 1, driver="kubernetes")
    with pytest.raises(dk.InvalidRequestError, match="not one of"):
        fn.spawn(1, 1, driver="elsewhere")


def worker_pid():
    import os

    return os.getpid()


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_function_deleted_by_another_process_lets_go_of_its_workers_here(store, tmp_path, monkeypatch):
    """Two cores on one store (a second server, or the standalone gateway): the one that did not
    delete the function ends its warm workers for it too, instead of keeping them for good."""
    from contextlib import ExitStack

    from tests.postgres_support import fresh_database

    with ExitStack() as stack:
        if store == "sqlite":
            homes, dsn = [tmp_path / "home"] * 2, None
        else:
            homes, dsn = [tmp_path / "a", tmp_path / "b"], stack.enter_context(fresh_database())
            from cryptography.fernet import Fernet

            monkeypatch.setenv("DISPATCH_SECRET_KEY", Fernet.generate_key().decode())  # the homes share it
        here, elsewhere = (stack.enter_context(dk.connect(home=home, store=dsn)) for home in homes)
        elsewhere.deploy(worker_pid, min_workers=2)
        pid = here.invoke("worker_pid").output  # this core starts workers of its own for it
        assert pid != elsewhere.invoke("worker_pid").output
        elsewhere.delete_function("worker_pid")
        deadline = time.monotonic() + 30  # it looks every second; the machine is shared
        while not _ended(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(pid), "the deleted function's worker still runs in the other process"
        with pytest.raises(dk.NotFoundError):
            here.invoke("worker_pid")
        here.deploy(worker_pid)  # deployed anew through this core: it runs again
        assert here.invoke("worker_pid").output != pid
