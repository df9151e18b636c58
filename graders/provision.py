"""Making a machine ready for the course: a Docker daemon that answers and the course images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .daemon import DaemonStatus, docker_client, ensure_daemon
from .engines import DAEMON_JSON, describe
from .images import ImageResult, ensure_images


@dataclass
class Provisioned:
    daemon: DaemonStatus
    images: list[ImageResult]
    engine: str = ""  # e.g. "Engine 20.10.24+dfsg1 (API 1.41), …; classic image store (overlay2)"


def provision(log_dir: Path, on_step: Callable[[str], None] | None = None,
              engine: str = "auto", image_store: str | None = None,
              config_path: Path = DAEMON_JSON) -> Provisioned:
    """Find or start the daemon (dockerd's log goes to ``log_dir``), then provide the images.

    ``engine`` and ``image_store`` are what `course setup --engine/--image-store` ask for
    (see daemon.ensure_daemon); the defaults take the daemon as it is.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    daemon = ensure_daemon(log_path=log_dir / "dockerd.log", on_step=on_step, engine=engine,
                           image_store=image_store, config_path=config_path)
    client = docker_client()
    try:
        engine_line = describe(client.version(), client.info())
        images = ensure_images(client, on_step=on_step)
    finally:
        client.close()
    return Provisioned(daemon, images, engine_line)
