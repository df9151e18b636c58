"""An advisory lock that tells a grading run whether it has the Docker daemon to itself."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _lock_path() -> Path:
    daemon = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    digest = hashlib.sha256(daemon.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"docker-course-grading-{digest}.lock"


@contextmanager
def exclusive_grading() -> Iterator[bool]:
    """Yield True if no other grading run uses this daemon, holding that claim until exit.

    Only a run that holds the claim may sweep unlabelled objects by comparing snapshots; a
    second concurrent run gets False and sweeps by label and name alone.
    """
    handle = open(_lock_path(), "a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
