"""The wheel ships the prebuilt panel where JupyterLab finds it, so `pip install dispatch-kernel`
then `jupyter lab` shows it with no node on the user's machine.

The wheel is built here from this checkout with the panel `make env` built
(HATCH_JUPYTER_BUILDER_SKIP_NPM=1: a release build runs npm itself), by uv, the way any
frontend builds it: in an isolated environment with the build requirements of pyproject.toml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "dispatch_kernel" / "labextension"
SHARE = "data/share/jupyter/labextensions/dispatch-kernel/"


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_prebuilt_panel(tmp_path: Path) -> None:
    if not (LABEXTENSION / "package.json").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the panel is not built (CI=true: `make env` builds it)")
        pytest.skip("the panel is not built; run `make env`")
    uv = Path(sys.executable).parent / "uv"
    done = subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=280,
        env={**os.environ, "HATCH_JUPYTER_BUILDER_SKIP_NPM": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [wheel] = tmp_path.glob("dispatch_kernel-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        data = next(n.split(".data/")[0] + ".data/" for n in names if ".data/" in n)
        shared = sorted(n[len(data):] for n in names if n.startswith(data + SHARE))
        package = json.loads(archive.read(f"{data}{SHARE}package.json"))
        install = json.loads(archive.read(f"{data}{SHARE}install.json"))
    built = sorted(SHARE + str(p.relative_to(LABEXTENSION)) for p in LABEXTENSION.rglob("*") if p.is_file())
    assert shared == sorted([*built, SHARE + "install.json"])
    assert package["name"] == "dispatch-kernel" and "_build" in package["jupyterlab"]
    assert install["packageName"] == "dispatch-kernel"
    # The panel is shared data only: the Python package does not carry a second copy.
    assert not [n for n in names if n.startswith("dispatch_kernel/labextension")]
    assert f"{data}data/etc/jupyter/jupyter_server_config.d/dispatch_kernel.json" in names
