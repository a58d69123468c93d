"""Where the embedded default keeps its files (database, environments, keys, logs).

Light on purpose: connect() resolves the home before the core is imported, to start the fork
server while the rest loads; so the home is worked out as a string here, without pathlib.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: see dispatch_kernel/__init__.py
if TYPE_CHECKING:
    from pathlib import Path

HOME_ENV = "DISPATCH_HOME"


def _default_home() -> str:
    if os.environ.get(HOME_ENV):
        return os.environ[HOME_ENV]
    import platformdirs

    return platformdirs.user_data_dir("dispatch-kernel", appauthor=False)


def default_home() -> Path:
    """DISPATCH_HOME if set, else the platform's user data directory for dispatch-kernel."""
    from pathlib import Path

    return Path(_default_home()).expanduser()


def home_directory(home: str | os.PathLike[str] | None) -> str:
    """`home` (or the default home) as an absolute path, symbolic links resolved: the same
    path as resolve_home(), as a string."""
    return os.path.realpath(os.path.expanduser(_default_home() if home is None else os.fspath(home)))


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    """`home` (or the default home) as the absolute path Settings keeps."""
    from pathlib import Path

    return Path(home_directory(home))


__all__ = ["HOME_ENV", "default_home", "home_directory", "resolve_home"]
