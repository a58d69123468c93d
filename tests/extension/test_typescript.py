"""The panel's TypeScript (extension/): its lint (prettier, eslint) and unit tests (jest) pass,
and the prebuilt extension JupyterLab loads is built from the sources as they are.

Node and npm build the panel; `make env` installs what package-lock.json pins. Under CI=true a
missing node, npm or node_modules fails these tests; elsewhere they are skipped with the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extension"
LABEXTENSION = REPO / "dispatch_kernel" / "labextension"
NPM_TIMEOUT = 300  # seconds for one npm script (jest compiles the TypeScript first)


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the panel's checks must run; `make env` prepares them)")
    pytest.skip(f"{reason}; run `make env`")


@pytest.fixture(scope="module")
def npm() -> str:
    """npm, with the panel's node_modules installed."""
    found = shutil.which("npm")
    if not found or not shutil.which("node"):
        _missing("node and npm are not installed")
    if not (EXTENSION / "node_modules" / ".package-lock.json").is_file():
        _missing("extension/node_modules is not installed")
    return found


def _run(npm: str, *script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [npm, "run", *script], cwd=EXTENSION, capture_output=True, text=True, timeout=NPM_TIMEOUT,
        env={**os.environ, "CI": "true", "FORCE_COLOR": "0", "NO_COLOR": "1"},
    )


@pytest.mark.timeout(NPM_TIMEOUT)
def test_lint_passes(npm: str) -> None:
    done = _run(npm, "lint:check")
    assert done.returncode == 0, f"npm run lint:check failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "All matched files use Prettier code style!" in done.stdout + done.stderr


@pytest.mark.timeout(NPM_TIMEOUT)
def test_unit_tests_pass(npm: str) -> None:
    done = _run(npm, "test", "--", "--ci")
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"npm test failed:\n{report[-6000:]}"
    assert "failed" not in report.split("Tests:")[-1].splitlines()[0], report[-2000:]


def test_the_prebuilt_extension_is_built_from_the_current_sources(npm: str) -> None:
    """JupyterLab loads dispatch_kernel/labextension: it must not be older than any source."""
    built = LABEXTENSION / "package.json"
    if not built.is_file():
        _missing("the panel is not built (dispatch_kernel/labextension)")
    sources = [EXTENSION / name for name in ("package.json", "tsconfig.json")]
    sources += [*(EXTENSION / "src").glob("*.ts*"), *(EXTENSION / "style").glob("*")]
    stale = [str(p.relative_to(REPO)) for p in sources if p.stat().st_mtime > built.stat().st_mtime]
    assert not stale, f"changed since the panel was built: {stale}; `make env` rebuilds it"
    metadata = json.loads(built.read_text())
    assert metadata["name"] == "dispatch-kernel"
    assert metadata["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert (LABEXTENSION / metadata["jupyterlab"]["_build"]["load"]).is_file()
