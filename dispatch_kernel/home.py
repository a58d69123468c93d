"""Where the embedded default keeps its files (database, environments, keys, logs).

Light on purpose: connect() resolves the home before the core is imported, to start the fork
server while the rest loads.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DISPATCH_HOME"


def default_home() -> Path:
    """DISPATCH_HOME if set, else the platform's user data directory for dispatch-kernel."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("dispatch-kernel", appauthor=False))


def resolve_home(home: str | Path | None) -> Path:
    """`home` (or the default home) as the absolute path Settings keeps."""
    return Path(default_home() if home is None else home).expanduser().resolve()


__all__ = ["HOME_ENV", "default_home", "resolve_home"]
