"""The package's public surface: a sorted __all__, and an import that stays light."""

import subprocess
import sys

import dispatch_kernel as dk


def test_all_is_sorted_and_complete():
    assert dk.__all__ == sorted(dk.__all__)
    for name in dk.__all__:
        assert getattr(dk, name) is not None, name


def test_every_public_name_has_a_docstring():
    for name in dk.__all__:
        assert (getattr(dk, name).__doc__ or "").strip(), name


def test_import_loads_neither_the_core_nor_jupyter():
    # Workers import dispatch_kernel inside a function's environment: it must stay light.
    code = (
        "import sys, dispatch_kernel;"
        "heavy = [m for m in ('dispatch_kernel.core', 'jsonschema', 'cryptography', 'IPython',"
        " 'ipywidgets', 'jupyter_server', 'sqlite3') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_local_client_satisfies_the_client_protocol(client):
    assert isinstance(client, dk.Client)
