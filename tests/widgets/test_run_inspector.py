"""RunInspector: input, output, logs, and the error with its stack trace, as a user sees them."""

import dispatch_kernel as dk
from dispatch_kernel.widgets import RunInspector

from .helpers import add, divide

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_a_failed_run_shows_its_error_trace_and_logs(client):
    fn = client.deploy(divide)
    handle = fn.spawn(1, 0)
    run = handle.wait(timeout=30)
    assert run.status == dk.RunStatus.FAILED

    inspector = RunInspector(run)

    assert "FAILED" in inspector.header.value and "divide" in inspector.header.value
    assert "FunctionError" in inspector.error.value
    assert "ZeroDivisionError: division by zero" in inspector.error.value
    assert "Traceback (most recent call last)" in inspector.stacktrace.value
    assert "in divide" in inspector.stacktrace.value
    assert "about to divide" in inspector.stderr.value
    assert "nothing on stdout" in inspector.stdout.value
    assert "(no output)" in inspector.output.value
    assert "[\n  1,\n  0\n]" in inspector.input.value
    assert inspector.tabs.titles[inspector.tabs.selected_index] == "Error"  # opens on the answer


def test_a_succeeded_run_shows_its_output_and_stdout(client):
    fn = client.deploy(add)
    run = fn.spawn(2, 3).wait(timeout=30)

    inspector = RunInspector(run)

    assert ">5</pre>" in inspector.output.value
    assert "adding 2 and 3" in inspector.stdout.value
    assert "(no error)" in inspector.error.value
    assert "no stack trace" in inspector.stacktrace.value
    assert inspector.tabs.titles[inspector.tabs.selected_index] == "Output"


def test_an_input_error_needs_no_stack_trace(client):
    fn = client.deploy(add, schema_in={"type": "array", "items": {"type": "integer"}})
    run = client.invoke(fn.name, ["x", 1])

    inspector = RunInspector(run)

    assert run.status == dk.RunStatus.FAILED
    assert "InputError" in inspector.error.value
    assert "no stack trace" in inspector.stacktrace.value


def test_user_data_is_escaped(client):
    def shout():
        print("<script>alert(1)</script>")
        return "<b>bold</b>"

    run = client.deploy(shout).spawn().wait(timeout=30)
    inspector = RunInspector(run)

    assert "<script>" not in inspector.stdout.value and "&lt;script&gt;" in inspector.stdout.value
    assert "<b>bold" not in inspector.output.value and "&lt;b&gt;bold" in inspector.output.value


def test_update_follows_the_run_and_keeps_a_tab_the_user_picked(client):
    fn = client.deploy(add)
    run = fn.spawn(1, 1).wait(timeout=30)
    queued = dk.Run.from_dict({**run.to_dict(), "status": "RUNNING", "output": None,
                               "times": {"queued": run.queued, "started": run.started}})
    inspector = RunInspector(queued)
    assert "RUNNING" in inspector.header.value and "no output yet" in inspector.output.value

    inspector.update(run)
    assert "SUCCEEDED" in inspector.header.value and ">2</pre>" in inspector.output.value
    inspector.tabs.selected_index = 2  # the user looks at stdout
    inspector.update(run)
    assert inspector.tabs.selected_index == 2


def test_the_display_bundle_reads_without_a_widget_frontend(client):
    fn = client.deploy(divide)
    run = fn.spawn(1, 0).wait(timeout=30)
    bundle = RunInspector(run)._repr_mimebundle_()

    assert WIDGET_VIEW in bundle
    text = bundle["text/plain"]
    assert text.startswith(f"run {run.id} of divide: FAILED")
    assert "error:  FunctionError: ZeroDivisionError: division by zero" in text
    assert "Traceback (most recent call last)" in text and "about to divide" in text
    html = bundle["text/html"]
    assert "<table" in html and "ZeroDivisionError" in html and "Traceback" in html
