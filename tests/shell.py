"""Running cells in a real IPython shell with dispatch_kernel loaded, for the magic tests."""

from IPython.utils.capture import capture_output


def run(ip, code):
    """Run a cell; returns (result, captured output)."""
    with capture_output() as captured:
        result = ip.run_cell(code)
    return result, captured


def shown(captured) -> str:
    """Everything a cell showed as text: printed output and the text/plain of its displays."""
    return captured.stdout + "".join(o.data.get("text/plain", "") for o in captured.outputs)
