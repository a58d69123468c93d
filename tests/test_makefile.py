"""The Makefile's promise to a newcomer: `make demo` needs only python3 (no system packages, no
root), while `make test` installs the system packages the tests drive. Read from what make would
run (`make -n -B`: every step, nothing done)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = ("apt-get", "chromium", "golang", "podman", "debootstrap", "docker-registry")
NODE = ("npm ", "nodejs")  # the JupyterLab panel's build: for the tests, never for the demo


def _plan(target: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed")  # the Makefile is how the project is used: never skipped
    result = subprocess.run([make, "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_demo_installs_no_system_package():
    plan = _plan("demo")
    assert "notebooks/run.py notebooks/quickstart.ipynb" in plan and "python3 -m venv" in plan
    assert not [word for word in SYSTEM + NODE if word in plan], plan


@pytest.mark.parametrize("target", ["test", "bench"])
def test_tests_and_benchmarks_still_install_the_system_packages(target):
    plan = _plan(target)
    assert all(word in plan for word in SYSTEM), plan


def test_the_tests_build_the_panel():
    plan = _plan("test")
    assert "npm ci" in plan and "npm run build:prod" in plan, plan


def test_the_tests_install_the_oidc_provider_and_the_hubs_proxy():
    plan = _plan("test")
    assert "cd tests/identity/oidc && npm ci" in plan, plan
