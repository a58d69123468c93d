"""Settings: everything a Dispatch core is built from, with defaults for the embedded mode."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .model import DEFAULT_ORG

HOME_ENV = "DISPATCH_HOME"


def default_home() -> Path:
    """DISPATCH_HOME if set, else the platform's user data directory for dispatch-kernel."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("dispatch-kernel", appauthor=False))


@dataclass
class Settings:
    """How to build a Dispatch core; plug-ins are chosen by their entry-point names."""

    home: Path = field(default_factory=default_home)
    store: str = "sqlite"
    driver: str = "local"
    images: str = "venv"
    org: str = DEFAULT_ORG
    run_threads: int = 64  # threads that carry non-blocking runs and map() chunks
    # Images and containers (images "oci", driver "container"); see README for the variables.
    registry: str = field(default_factory=lambda: os.environ.get("DISPATCH_REGISTRY", ""))  # host:port
    base_image: str = field(default_factory=lambda: os.environ.get("DISPATCH_BASE_IMAGE", ""))
    docker_host: str = field(default_factory=lambda: os.environ.get("DOCKER_HOST", ""))
    # Passed through to the engine for every container (docker's containers.run keywords),
    # e.g. {"runtime": "runc", "ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]}.
    container_options: dict = field(default_factory=dict)
    bus: str = "sqlite"  # the event bus plug-in (entry point group dispatch_kernel.buses)
    bus_options: dict = field(default_factory=dict)  # e.g. {"url": "nats://...", "retry_base": 0.2}

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
