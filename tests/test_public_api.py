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


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_alone_loads_no_model_and_no_http_stack():
    loaded = _modules_after("import dispatch_kernel")
    assert not loaded & {"dispatch_kernel.model", "dispatch_kernel._http", "http.client", "cloudpickle"}


def test_the_fork_server_loads_only_the_runtime():
    # Every worker is forked from it: what it imports, each function's first run pays for.
    loaded = _modules_after("import dispatch_kernel.runtime.zygote")
    ours = {m for m in loaded if m.startswith("dispatch_kernel.")}
    assert ours <= {f"dispatch_kernel.{m}" for m in ("version", "runtime", "runtime.zygote", "runtime.worker",
                    "runtime.channel", "runtime.context", "runtime.encoding", "runtime.protocol",
                    "runtime.spin", "runtime.limits", "runtime.capture", "runtime.closures")}
    assert not loaded & {"http.client", "sqlite3", "cryptography", "jsonschema", "tornado"}


def test_a_first_deploy_and_run_loads_nothing_it_does_not_need(tmp_path):
    # What a notebook's first %%dispatch cell costs: no HTTP stack, no schema validator, no
    # web server, no distribution metadata for a function that imports nothing installed.
    loaded = _modules_after(
        "import dispatch_kernel as dk\n"
        "def inc(x):\n    return x + 1\n"
        f"client = dk.connect(home={str(tmp_path)!r})\n"
        "assert client.deploy(inc, name='inc')(1) == 2\n"
        "client.close()"
    )
    heavy = {"http.client", "jsonschema", "jsonschema_rs", "tornado", "jupyter_server", "IPython",
             "kubernetes", "docker", "nats", "yaml", "packaging.requirements", "importlib.metadata",
             "email.parser"}
    assert not loaded & heavy


def test_the_local_client_satisfies_the_client_protocol(client):
    assert isinstance(client, dk.Client)
