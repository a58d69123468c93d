"""Where the command works: the server it is logged in to (~/.dispatch/config.json), or the
embedded default."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .._connect import connect, token_from_env
from .._http import HttpClient
from ..settings import default_home
from .errors import CliError

CONFIG_ENV = "DISPATCH_CONFIG"


def config_path() -> Path:
    """DISPATCH_CONFIG, else ~/.dispatch/config.json."""
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".dispatch" / "config.json").expanduser()


def load_config() -> dict[str, Any]:
    """The saved login (url and token), or nothing."""
    path = config_path()
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def save_config(config: dict[str, Any]) -> Path:
    """Write the config readable by its owner only (it holds a token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return path


def open_client(args: argparse.Namespace):
    """The server client (--url, DISPATCH_URL, or the login), else the embedded default."""
    config = load_config()
    url, token = args.url, args.token
    if url is None and os.environ.get("DISPATCH_URL"):
        url, token = os.environ["DISPATCH_URL"], token or token_from_env()
    if url is None and config.get("url"):
        url, token = config["url"], token or config.get("token")
    org = getattr(args, "org", None)
    if url:
        return HttpClient(url, token, org=org)
    return connect(home=default_home(), org=org)  # the embedded default, on DISPATCH_HOME
