"""Environments: the caller's own when it suffices, else a cached uv-built venv."""

import importlib.metadata
import sys

import pytest

import dispatch_kernel as dk
from dispatch_kernel.images.venv import HOST_ENVIRONMENT, host_satisfies

INFLECTION = "inflection==0.5.1"  # a small distribution the test environment does not have


def uses_inflection():
    import sys

    import inflection

    return {"camel": inflection.camelize("dispatch_kernel"), "prefix": sys.prefix}


def test_host_satisfies_checks_names_versions_and_markers():
    version = importlib.metadata.version("jsonschema")
    assert host_satisfies([f"jsonschema=={version}", "cloudpickle>=1"])
    assert not host_satisfies(["jsonschema==0.0.1"])
    assert not host_satisfies(["no-such-distribution-xyz"])
    assert host_satisfies(['no-such-distribution-xyz; python_version < "3"'])


def test_the_callers_environment_serves_when_it_has_everything(client):
    def validates():
        import jsonschema

        return jsonschema.__name__

    fn = client.deploy(validates)
    assert fn.function.image == HOST_ENVIRONMENT
    assert fn() == "jsonschema"


def test_a_missing_requirement_builds_a_shared_cached_environment(client, home):
    assert not host_satisfies([INFLECTION])
    lines = []
    fn = client.deploy(uses_inflection, requirements=[INFLECTION], progress=lines.append)
    image = fn.function.image
    assert image != HOST_ENVIRONMENT and (home / "envs" / image / ".ready").exists()
    assert any("inflection" in line for line in lines)  # the build streamed its log
    result = fn()
    assert result["camel"] == "DispatchKernel"
    assert result["prefix"] == str(home / "envs" / image)
    assert result["prefix"] != sys.prefix

    def also_inflection():
        import inflection

        return inflection.underscore("DeviceType")

    lines.clear()
    other = client.deploy(also_inflection, requirements=[INFLECTION], progress=lines.append)
    assert other.function.image == image  # content-addressed: shared, not rebuilt
    assert not any("building" in line for line in lines)
    assert other() == "device_type"


def test_a_function_whose_import_is_missing_in_its_environment_fails_clearly(client):
    def needs_inflection_undeclared():
        import inflection

        return inflection.camelize("x")

    fn = client.deploy(needs_inflection_undeclared)
    with pytest.raises(dk.RunFunctionError, match="No module named 'inflection'"):
        fn()


def test_a_built_environment_ignores_the_callers_pythonpath(client, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    (shadow / "inflection").mkdir(parents=True)
    (shadow / "inflection" / "__init__.py").write_text("def camelize(text):\n    return 'shadowed'\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    fn = client.deploy(uses_inflection, requirements=[INFLECTION])
    assert fn()["camel"] == "DispatchKernel"  # the environment's own package, not the shadow
