"""Packaging: code by value, requirements from what the function imports."""

import importlib.metadata
import subprocess
import sys
import textwrap

import jsonschema
import pytest

from dispatch_kernel.model import InvalidRequestError
from dispatch_kernel.packaging import FunctionSource, package
from dispatch_kernel.packaging.source import calling_convention

JSONSCHEMA = f"jsonschema=={importlib.metadata.version('jsonschema')}"


def uses_a_global_module(instance):
    jsonschema.validate(instance, {"type": "object"})
    return True


def imports_inside(x):
    import json

    import packaging.version

    return json.dumps(str(packaging.version.Version(x)))


def test_requirements_are_pinned_to_the_installed_versions():
    source = package(uses_a_global_module)
    assert source.requirements == [JSONSCHEMA]
    assert "jsonschema" in source.modules


def test_imports_inside_the_function_count_and_the_standard_library_does_not():
    source = package(imports_inside)
    version = importlib.metadata.version("packaging")
    assert source.requirements == [f"packaging=={version}"]


def test_helpers_and_closures_are_followed():
    def helper(instance):
        return jsonschema.Draft202012Validator({}).is_valid(instance)

    def outer(x):
        return helper(x)

    assert package(outer).requirements == [JSONSCHEMA]


def test_caller_requirements_are_added_and_override_detected_pins():
    source = package(uses_a_global_module, ["requests>=2", "jsonschema>=4.0"])
    assert source.requirements == ["jsonschema>=4.0", "requests>=2"]
    with pytest.raises(InvalidRequestError, match="not a valid requirement"):
        package(uses_a_global_module, ["not a requirement!!"])


def test_calling_conventions():
    def handle(ctx, payload):
        return payload

    def plain(a, b):
        return a

    assert calling_convention(handle) == "dispatch"
    assert calling_convention(plain) == "plain"
    assert calling_convention(lambda context, payload: 1) == "dispatch"
    assert calling_convention(print) == "plain"


def test_the_digest_is_stable_and_changes_with_the_code():
    def f(x):
        return x + 1

    first, second = package(f), package(f)
    assert first.digest == second.digest

    def f(x):  # noqa: F811
        return x + 2

    assert package(f).digest != first.digest


def test_the_encoded_source_round_trips():
    source = package(uses_a_global_module)
    again = FunctionSource.decode(source.encode())
    assert again.handler == "uses_a_global_module" and again.requirements == source.requirements


def test_a_function_from_a_local_module_travels_by_value(tmp_path, monkeypatch):
    module_dir = tmp_path / "src"
    module_dir.mkdir()
    (module_dir / "localhelpers.py").write_text(textwrap.dedent(
        """
        FACTOR = 6

        def scale(x):
            return x * FACTOR

        def compute(x):
            return scale(x) + 0
        """
    ))
    monkeypatch.syspath_prepend(str(module_dir))
    import localhelpers

    source = package(localhelpers.compute)
    assert "localhelpers" not in source.modules and source.requirements == []
    # A fresh interpreter that cannot import localhelpers still runs it.
    code = (
        "import base64, sys, cloudpickle;"
        "fn = cloudpickle.loads(base64.b64decode(sys.argv[1]));"
        "print(fn(7))"
    )
    import base64

    out = subprocess.run(
        [sys.executable, "-c", code, base64.b64encode(source.payload).decode()],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    assert out.stdout.strip() == "42"
    import cloudpickle

    assert "localhelpers" not in cloudpickle.list_registry_pickle_by_value()  # registration undone


def test_something_that_is_not_a_function_is_refused():
    with pytest.raises(InvalidRequestError, match="expected a function"):
        package(42)
