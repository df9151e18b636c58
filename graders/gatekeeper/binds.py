"""Bind sources held fast between the check and the mount.

The daemon resolves a bind source when the container starts (and again whenever it restarts,
by itself under a restart policy), not when it is created: a folder the submission swaps for a
symlink in between would take the daemon anywhere. So the gatekeeper opens the checked folder
itself, one path component at a time without following links, bind-mounts exactly what it
opened onto a folder of its own that the submission cannot change, and gives the daemon that
path. What the container then mounts is the folder that was checked, whatever happens to the
path in the scratch folder later. Pinning needs root (a mount); without it the source is
checked again before every start, which leaves a restart policy's own restarts unchecked.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
import tempfile
import threading
from pathlib import Path

from .rules import Refused

MS_BIND, MS_REC, MNT_DETACH = 4096, 16384, 2
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _outside(source: str, roots: list[Path]) -> Refused:
    return Refused("bind-mounts-in-scratch",
                   f"bind mount of {source!r} is outside this submission's scratch folder "
                   f"{roots[0] if roots else ''} (the Docker socket and the host's files stay "
                   f"out of reach)")


def inside(source: str, roots: list[Path]) -> tuple[Path, list[str]] | None:
    """The allowed root that holds ``source`` once its symlinks are resolved, and the path's
    components below it; None when no root holds it."""
    real = os.path.realpath(source)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base + os.sep):
            relative = os.path.relpath(real, base)
            return Path(base), ([] if relative == "." else relative.split(os.sep))
    return None


def _open_beneath(root: Path, parts: list[str], create: bool) -> int:
    """An O_PATH descriptor of ``root/parts...`` reached without following any link.

    A path component that is (or has just become) a symlink fails the walk, so what is opened
    lies inside ``root`` whatever the submission does to the path meanwhile.
    """
    if any(part in ("", ".", "..") for part in parts):
        raise OSError("the path leaves its folder")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts:
            try:
                following = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                # As the daemon does for a missing bind source: a folder, made by root.
                parent = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.mkdir(part, 0o755, dir_fd=parent)
                finally:
                    os.close(parent)
                following = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            if stat.S_ISLNK(os.fstat(following).st_mode):
                os.close(following)
                raise OSError(f"{part} became a symlink")
            os.close(fd)
            fd = following
        return fd
    except BaseException:
        os.close(fd)
        raise


class BindPins:
    """The bind sources of one submission, each pinned on a mount point of the gatekeeper's."""

    def __init__(self) -> None:
        self.available = _libc is not None and os.geteuid() == 0
        self._folder: Path | None = None
        self._pins: dict[str, str] = {}
        self._lock = threading.Lock()

    def pin(self, source: str, roots: list[Path], create: bool) -> str:
        """The path to give the daemon for ``source``; refused when it leaves ``roots``."""
        found = inside(source, roots)
        if found is None:
            raise _outside(source, roots)
        if not self.available:
            return source
        try:
            fd = _open_beneath(*found, create)
        except FileNotFoundError:
            return source  # the daemon reports the missing path itself
        except OSError as error:
            raise Refused("bind-mounts-in-scratch", f"bind mount of {source!r} changed while "
                                                    f"it was being checked ({error})") from None
        try:
            with self._lock:
                if self._folder is None:
                    self._folder = Path(tempfile.mkdtemp(prefix="course-binds-"))
                    os.chmod(self._folder, 0o711)
                point = self._folder / str(len(self._pins))
                self._pins[str(point)] = source
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                point.mkdir()
            else:
                point.touch()
            if _libc.mount(f"/proc/self/fd/{fd}".encode(), str(point).encode(), None,
                           MS_BIND | MS_REC, None) != 0:
                error = ctypes.get_errno()
                raise Refused("bind-mounts-in-scratch", f"bind mount of {source!r} could not "
                                                        f"be pinned: {os.strerror(error)}")
            return str(point)
        finally:
            os.close(fd)

    def owns(self, path: str) -> bool:
        with self._lock:
            return path in self._pins

    def originals(self) -> dict[str, str]:
        """Pinned path -> the source the submission gave, to show it its own paths."""
        with self._lock:
            return dict(self._pins)

    def close(self) -> None:
        """Take the pins down (after the containers that used them are gone)."""
        with self._lock:
            points, folder = list(self._pins), self._folder
            self._pins, self._folder = {}, None
        for point in points:
            _libc.umount2(point.encode(), MNT_DETACH)
            try:  # never recursive: a mount point still in use keeps what it shows
                os.rmdir(point) if os.path.isdir(point) else os.unlink(point)
            except OSError:
                pass
        if folder is not None:
            try:
                folder.rmdir()
            except OSError:
                pass
