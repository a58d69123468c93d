"""InvokeForm: fields from the input schema, checked before sending, the run shown below."""

import ipywidgets as widgets

import dispatch_kernel as dk
from dispatch_kernel.widgets import InvokeForm, RunInspector

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

ORDER_SCHEMA = {
    "type": "object",
    "required": ["item", "quantity"],
    "properties": {
        "note": {"type": ["string", "null"], "description": "for the kitchen"},
        "item": {"type": "string", "minLength": 1},
        "quantity": {"type": "integer", "minimum": 1},
        "price": {"type": "number"},
        "gift": {"type": "boolean"},
        "size": {"enum": ["S", "M", "L"]},
        "extras": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "anything": {},
    },
}


def order(item, quantity, price=1.0, gift=False, size="M", extras=None, tags=(), note=None, anything=None):
    return {"item": item, "quantity": quantity, "total": price * quantity, "gift": gift, "size": size,
            "extras": extras, "tags": list(tags), "note": note}


def field(form: InvokeForm, name: str):
    return next(f for f in form.fields if f.name == name)


def test_fields_follow_the_schema_and_required_ones_are_marked(client):
    fn = client.deploy(order, schema_in=ORDER_SCHEMA)

    form = InvokeForm(client, fn)

    expected = {
        "item": widgets.Text, "quantity": widgets.IntText, "price": widgets.FloatText,
        "gift": widgets.Checkbox, "size": widgets.Dropdown, "extras": widgets.Textarea,
        "tags": widgets.Textarea, "anything": widgets.Textarea, "note": widgets.Text,
    }
    assert {f.name: type(f.widget) for f in form.fields} == expected
    assert [f.name for f in form.fields][:2] == ["item", "quantity"]  # required first
    assert field(form, "item").widget.description == "item*"
    assert field(form, "quantity").widget.description == "quantity*"
    assert field(form, "price").widget.description == "price"
    assert [label for label, _ in field(form, "size").widget.options][1:] == ["S", "M", "L"]
    assert "for the kitchen" in field(form, "note").row.children[1].value
    assert form.raw is None and form.button.description == "Invoke"


def test_invalid_input_is_refused_with_messages_and_no_run(client):
    fn = client.deploy(order, schema_in=ORDER_SCHEMA)
    form = InvokeForm(client, fn)

    field(form, "quantity").widget.value = 0
    form.button.click()

    assert "Not sent" in form.messages.value
    assert "quantity: 0 is less than the minimum of 1" in form.messages.value
    assert "item: &#x27;&#x27; should be non-empty" in form.messages.value
    assert form.last_run is None and form.inspector is None
    assert client.list_runs(function="order") == []

    field(form, "item").widget.value = "tea"
    field(form, "quantity").widget.value = 2
    field(form, "extras").widget.value = "{not json"
    assert form.submit() is None
    assert "extras: not valid JSON" in form.messages.value
    assert client.list_runs(function="order") == []


def test_a_valid_submit_runs_and_shows_the_run(client):
    fn = client.deploy(order, schema_in=ORDER_SCHEMA)
    form = InvokeForm(client, fn)
    field(form, "quantity").widget.value = 0
    form.submit()  # refused first: the message goes once the input is fixed

    field(form, "item").widget.value = "tea"
    field(form, "quantity").widget.value = 3
    field(form, "price").widget.value = 2.5
    field(form, "size").widget.value = "L"
    field(form, "tags").widget.value = '["hot"]'
    form.button.click()
    run = form.wait(timeout=30)

    assert run.status == dk.RunStatus.SUCCEEDED
    # Optional fields left alone are not sent: the function's own defaults apply.
    assert run.input == {"item": "tea", "quantity": 3, "price": 2.5, "size": "L", "tags": ["hot"]}
    assert run.output["total"] == 7.5 and run.output["gift"] is False and run.output["note"] is None
    assert [r.id for r in client.list_runs(function="order")] == [run.id]
    assert form.messages.value == ""
    assert isinstance(form.inspector, RunInspector) and form.result_area.children == (form.inspector,)
    assert "SUCCEEDED" in form.inspector.header.value and "7.5" in form.inspector.output.value


def test_without_a_schema_the_input_is_one_json_box(client):
    def add(x, y):
        return x + y

    fn = client.deploy(add)
    form = InvokeForm(client, "add")
    assert form.fields is None and isinstance(form.raw, widgets.Textarea)

    form.raw.value = "[1, 2"
    assert form.submit() is None and "input: not valid JSON" in form.messages.value
    assert fn.runs() == []

    form.raw.value = '{"x": 1, "y": 2}'
    form.submit()
    assert form.wait(timeout=30).output == 3


def test_a_non_object_schema_is_one_json_box_still_checked(client):
    def total(*numbers):
        return sum(numbers)

    fn = client.deploy(total, schema_in={"type": "array", "items": {"type": "number"}})
    form = InvokeForm(client, fn.function)
    assert form.fields is None

    form.raw.value = '[1, "two"]'
    assert form.submit() is None
    assert "1: &#x27;two&#x27; is not of type &#x27;number&#x27;" in form.messages.value
    assert fn.runs() == []

    form.raw.value = "[1, 2, 3.5]"
    form.submit()
    assert form.wait(timeout=30).output == 6.5


def test_a_failed_run_shows_its_error(client):
    def explode(reason):
        raise RuntimeError(reason)

    fn = client.deploy(explode, schema_in={"type": "object", "required": ["reason"],
                                           "properties": {"reason": {"type": "string"}}})
    form = InvokeForm(client, fn)
    field(form, "reason").widget.value = "on purpose"
    form.submit()

    run = form.wait(timeout=30)
    assert run.status == dk.RunStatus.FAILED
    assert "RuntimeError: on purpose" in form.inspector.error.value
    assert "Traceback" in form.inspector.stacktrace.value


def test_a_deleted_function_gives_a_message_not_an_exception(client):
    def ping():
        return "pong"

    fn = client.deploy(ping)
    form = InvokeForm(client, fn)
    fn.delete()

    assert form.submit() is None
    assert "ping" in form.messages.value and "Not sent" in form.messages.value


def test_the_display_bundle_reads_without_a_widget_frontend(client):
    fn = client.deploy(order, schema_in=ORDER_SCHEMA)
    form = InvokeForm(client, fn)
    field(form, "item").widget.value = "tea"
    field(form, "quantity").widget.value = 1
    form.submit()
    form.wait(timeout=30)

    bundle = form._repr_mimebundle_()

    assert WIDGET_VIEW in bundle
    text = bundle["text/plain"]
    assert text.startswith("invoke order\n  item*: string\n  quantity*: integer")
    assert "SUCCEEDED" in text
    html = bundle["text/html"]
    assert "<table" in html and "quantity*" in html and "SUCCEEDED" in html
