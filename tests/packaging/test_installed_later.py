"""A package installed into a running process after its first deploy (what `%pip install` does
in a kernel) is pinned like any other: the map of installed distributions is read again when a
folder on sys.path changes. In a real process, with a real `pip install` of a wheel built here
(no network)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

NAME, VERSION = "dkfiglet", "1.0.4"


def _wheel(folder: Path) -> Path:
    """A minimal, valid pure-Python wheel of `dkfiglet` 1.0.4."""
    files = {
        f"{NAME}/__init__.py": "def render(text):\n    return '*** ' + text + ' ***'\n",
        f"{NAME}-{VERSION}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n",
        f"{NAME}-{VERSION}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n",
        f"{NAME}-{VERSION}.dist-info/top_level.txt": f"{NAME}\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{NAME}-{VERSION}.dist-info/RECORD,,")
    files[f"{NAME}-{VERSION}.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


SCRIPT = textwrap.dedent('''
    import json, subprocess, sys
    import dispatch_kernel as dk

    home, site, wheel = sys.argv[1:4]
    assert site in sys.path  # as a kernel's site-packages: on the path, empty before the install

    def before(x):
        return x

    with dk.connect(home=home) as client:
        first = client.deploy(before, name="before")  # reads the installed distributions
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                        "--disable-pip-version-check", "--target", site, wheel], check=True)
        import dkfiglet

        def banner(text):
            return dkfiglet.render(text)

        deployed = client.deploy(banner, name="banner")
        print(json.dumps({"before": first.function.requirements,
                          "after": deployed.function.requirements,
                          "run": client.invoke("banner", ["hi"]).to_dict()}))
''')


def test_a_package_installed_after_the_first_deploy_is_pinned(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    wheel = _wheel(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}  # the workers see what is installed there too
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "home"), str(site), str(wheel)],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert f"{NAME}=={VERSION}" not in answer["before"]
    assert f"{NAME}=={VERSION}" in answer["after"]  # pinned, as a fresh process would
    assert answer["run"]["output"] == "*** hi ***", answer["run"]["error"]


def test_the_pins_of_a_fresh_process_are_the_same(tmp_path):
    """The reference the fix is held to: a process that starts with the package installed."""
    site = tmp_path / "site"
    wheel = _wheel(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--disable-pip-version-check", "--target", str(site), str(wheel)], check=True, timeout=120)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import dkfiglet\n"
            "from dispatch_kernel.packaging.source import package\n"
            "def banner(text):\n    return dkfiglet.render(text)\n"
            "print(package(banner).requirements)")
    result = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"'{NAME}=={VERSION}'" in result.stdout
