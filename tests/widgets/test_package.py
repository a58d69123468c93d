"""The widgets package: a sorted, documented __all__, and ipywidgets only when asked for."""

import subprocess
import sys

import dispatch_kernel.widgets as dkw


def test_all_is_sorted_and_documented():
    assert dkw.__all__ == sorted(dkw.__all__)
    assert set(dkw.__all__) == {"FunctionCard", "InvokeForm", "RunInspector", "RunsTable"}
    for name in dkw.__all__:
        assert (getattr(dkw, name).__doc__ or "").strip(), name


def test_only_the_widgets_package_imports_ipywidgets():
    code = (
        "import sys, dispatch_kernel;"
        "before = 'ipywidgets' in sys.modules;"
        "import dispatch_kernel.widgets;"
        "print(before, 'ipywidgets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
