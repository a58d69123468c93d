"""Calls and the one input rule: how a JSON input becomes a Python call (protocol.arguments),
how a Python call is shown in its run record (protocol.recorded_input), and the Call that
carries both to the submit path."""

import pytest

from dispatch_kernel.model import Function, InvalidRequestError, RunStatus
from dispatch_kernel.runs.calls import Call, json_call, python_call
from dispatch_kernel.runtime.protocol import arguments, recorded_input

PLAIN = Function(name="add", org="acme", revision=3)
HANDLER = Function(name="hook", convention="dispatch")


@pytest.mark.parametrize(("value", "call"), [
    ({"a": 1, "b": 2}, ((), {"a": 1, "b": 2})),  # an object: keyword arguments
    ([1, 2], ((1, 2), {})),  # an array: positional ones
    (None, ((), {})),  # null: no arguments
    ({"args": [1], "kwargs": {"b": 2}}, ((1,), {"b": 2})),  # the Python call form
    ({"args": [], "kwargs": {}}, ((), {})),
    ("text", (("text",), {})),  # anything else: the one argument
    (7, ((7,), {})),
    # Only exactly {"args": array, "kwargs": object} is the call form; else plain keywords.
    ({"args": [1]}, ((), {"args": [1]})),
    ({"args": [1], "kwargs": {}, "c": 3}, ((), {"args": [1], "kwargs": {}, "c": 3})),
    ({"args": 1, "kwargs": {}}, ((), {"args": 1, "kwargs": {}})),
    ({"args": [], "kwargs": []}, ((), {"args": [], "kwargs": []})),
])
def test_a_plain_function_gets_its_arguments_from_the_json_input(value, call):
    assert arguments("plain", value) == call


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], None, "text", {"args": [1], "kwargs": {}}])
def test_a_handle_ctx_payload_function_gets_the_payload_as_it_is(value):
    args, kwargs = arguments("dispatch", value)
    assert kwargs == {} and len(args) == 1 and args[0] is value


@pytest.mark.parametrize(("args", "kwargs", "shown"), [
    ((1, 2), {}, [1, 2]),
    ((), {"a": 1}, {"a": 1}),
    ((1,), {"b": 2}, {"args": [1], "kwargs": {"b": 2}}),
    ((), {}, []),
    (({"a": 1},), {}, [{"a": 1}]),  # one object argument stays positional
    ((None,), {}, [None]),
])
def test_recorded_input_shows_a_python_call_the_way_arguments_reads_it_back(args, kwargs, shown):
    assert recorded_input(args, kwargs) == shown
    assert arguments("plain", shown) == (args, kwargs)


def test_recorded_input_of_keywords_named_args_and_kwargs_reads_back_as_the_same_call():
    kwargs = {"args": [1], "kwargs": {}}
    assert arguments("plain", recorded_input((), kwargs)) == ((), kwargs)


def test_a_json_call_keeps_its_input_as_given_and_makes_its_run():
    call = json_call(PLAIN, {"args": [1], "kwargs": {"b": 2}}, event={"type": "x"},
                     http={"path": "/"}, run_id="delivery-1")
    assert (call.args, call.kwargs) == ((1,), {"b": 2})
    run = call.run
    assert (run.id, run.function, run.org, run.function_revision) == ("delivery-1", "add", "acme", 3)
    assert run.input == {"args": [1], "kwargs": {"b": 2}}
    assert (run.event, run.http) == ({"type": "x"}, {"path": "/"})
    assert run.status == RunStatus.QUEUED and not call.admitted


def test_a_json_call_to_a_handle_ctx_payload_function_passes_the_payload():
    call = json_call(HANDLER, {"a": 1})
    assert (call.args, call.kwargs) == (({"a": 1},), {})
    assert call.run.input == {"a": 1}


def test_a_python_call_is_recorded_as_arguments_would_read_it():
    call = python_call(PLAIN, (1,), {"b": 2})
    assert (call.args, call.kwargs) == ((1,), {"b": 2})
    assert call.run.input == {"args": [1], "kwargs": {"b": 2}}
    assert python_call(PLAIN, [1, 2], {}).args == (1, 2)  # any sequence becomes a tuple
    assert python_call(PLAIN, (), {}).run.input == []


def test_a_python_call_to_a_handle_ctx_payload_function_takes_one_payload():
    call = python_call(HANDLER, ({"a": 1},), {})
    assert call.args == ({"a": 1},) and call.run.input == {"a": 1}
    with pytest.raises(InvalidRequestError, match="call it with one payload"):
        python_call(HANDLER, (1, 2), {})
    with pytest.raises(InvalidRequestError, match="call it with one payload"):
        python_call(HANDLER, (1,), {"extra": 2})
    with pytest.raises(InvalidRequestError, match="call it with one payload"):
        python_call(HANDLER, (), {})


def test_a_call_waits_for_its_function_before_it_has_a_run():
    call = Call(input=[1, 2])  # a REST request before the function is looked up
    assert call.run is None
    assert call.build(PLAIN) is call
    assert call.args == (1, 2) and call.run.input == [1, 2]
    assert call.run.id != "" and call.run_id is None  # a run id of its own


def test_done_tells_the_waiter_once():
    told: list[Call] = []
    call = json_call(PLAIN, None, waiter=told.append)
    call.done()
    call.done()
    assert told == [call]
