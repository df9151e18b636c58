"""Making a machine ready for the course: a Docker daemon that answers and the course images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .daemon import DaemonStatus, docker_client, ensure_daemon
from .images import ImageResult, ensure_images


@dataclass
class Provisioned:
    daemon: DaemonStatus
    images: list[ImageResult]


def provision(log_dir: Path, on_step: Callable[[str], None] | None = None) -> Provisioned:
    """Find or start the daemon (dockerd's log goes to ``log_dir``), then provide the images."""
    log_dir.mkdir(parents=True, exist_ok=True)
    daemon = ensure_daemon(log_path=log_dir / "dockerd.log", on_step=on_step)
    client = docker_client()
    try:
        images = ensure_images(client, on_step=on_step)
    finally:
        client.close()
    return Provisioned(daemon, images)
