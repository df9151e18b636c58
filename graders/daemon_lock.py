"""Advisory locks, one set per Docker daemon, that the grading processes of this host share.

They use ``flock``, which Windows lacks. There a learner's ``reset`` removes images without the
lock (as when the lock file cannot be opened), and a build behind the gatekeeper, which only
grading runs, stops with a ``GradingError`` that says grading needs Linux.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import GradingError

try:
    import fcntl
except ImportError:  # Windows: no flock, and no grading (see the module's docstring)
    fcntl = None

#: How long a build-cache lock is waited for before the work goes ahead without it (seconds):
#: builds hold it only between their steps, so waits are short; a stuck holder (or a submission
#: removing images in a loop) slows others down this much at most, and never stops them.
BUILD_CACHE_WAIT = 10.0
POLL_EVERY = 0.05


def _lock_path(purpose: str) -> Path:
    daemon = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    digest = hashlib.sha256(daemon.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"docker-course-grading-{digest}-{purpose}.lock"


def _open(path: Path) -> IO | None:
    """The lock file opened for locking, made if missing; None if this user may not open it.

    Read-only is enough to lock, and lets every user share a file that one of them made.
    """
    try:
        try:
            return open(os.open(path, os.O_RDONLY))
        except FileNotFoundError:
            return open(os.open(path, os.O_RDONLY | os.O_CREAT, 0o644))
    except OSError:
        return None


def _acquire(purpose: str, mode: int, deadline: float) -> IO | None:
    """An open lock file holding ``mode``, or None once ``deadline`` has passed."""
    handle = _open(_lock_path(purpose))
    while handle is not None:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(POLL_EVERY)
    return None


def _release(handle: IO | None) -> None:
    if handle is not None:
        handle.close()  # closing the file drops its lock


def _through_gate(mode: int, deadline: float) -> IO | None:
    """The build-cache lock in ``mode``, taken through the gate: an exclusive taker waiting at
    the gate keeps new shared takers out until it has had its turn."""
    gate = _acquire("build-gate", mode, deadline)
    cache = _acquire("build-cache", mode, deadline)
    _release(gate)
    return cache


class BuildHold:
    """The build-cache lock one build holds shared: let go while a step's container exists.

    Builds share the daemon's build cache: a build that finds a step cached goes on from that
    step's image a moment later. Removing an image deletes the untagged step images under it, so
    a removal in that moment takes the cached step from under the other build, which then fails
    ("failed to get digest", "No such image"). Builds hold this lock shared and
    ``removing_images`` holds it alone; a removal that waits keeps new builds from starting.

    Every step runs in a container, which keeps the image it starts from from being deleted: a
    build may ``pause`` while one exists, so that a long or hanging ``RUN`` step does not make
    everyone's removals wait, and ``resume`` when it is gone. Resuming waits for a removal under
    way: a later stage of a multi-stage build starts again from a base image and can find
    another build's step images in the cache (going on without the lock, a second run of
    14-dockerfile's multi-stage example failed with "unable to find image" while a classmate's
    identical build was being removed).
    """

    def __init__(self) -> None:
        self._cache: IO | None = None

    def __enter__(self) -> BuildHold:
        self._take(time.monotonic() + BUILD_CACHE_WAIT)
        return self

    def __exit__(self, *_) -> None:
        self.pause()

    def pause(self) -> None:
        _release(self._cache)
        self._cache = None

    def resume(self) -> None:
        if self._cache is None:
            self._take(time.monotonic() + BUILD_CACHE_WAIT)

    def _take(self, deadline: float) -> None:
        if fcntl is None:
            raise GradingError(
                "Grading needs Linux: its build lock uses flock, which this platform lacks.",
                "Grade on Linux, as root for the whole sandbox (docs/sandbox.md); the "
                "notebooks themselves run here on Docker Desktop.")
        self._cache = _through_gate(fcntl.LOCK_SH, deadline)


@contextmanager
def removing_images() -> Iterator[None]:
    """Held while images are removed, with no build between its steps (see ``BuildHold``)."""
    cache = None
    if fcntl is not None:
        cache = _through_gate(fcntl.LOCK_EX, time.monotonic() + BUILD_CACHE_WAIT)
    try:
        yield
    finally:
        _release(cache)
