"""An assignment or submission folder as plain data, so it can travel to a worker and back.

nbgrader works on folders (notebooks beside data files, images, a Docker build context); a
worker on another machine gets the folder's files as (relative path, bytes) pairs. Reading is
done by the coordinator, often as root, in folders students filled: symbolic links are never
followed, and a folder is capped in size, so a submission cannot make the grader read (and hand
back) a file of the host's or fill its memory.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from .tasks import Files

#: nbgrader's default CourseDirectory.ignore, plus the submission time stamp nbgrader reads
#: itself: what is never carried as part of an assignment or a submission.
IGNORED = (".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "timestamp.txt")
#: The most a submission folder may carry, all files together.
MAX_FOLDER_BYTES = 64 * 1024 * 1024


def _ignored(relative: Path, ignore: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in ignore)


def read_folder(folder: Path, ignore: tuple[str, ...] = IGNORED,
                limit: int = MAX_FOLDER_BYTES) -> tuple[Files, list[str]]:
    """The regular files under ``folder`` and what was left out, and why.

    Symbolic links (to files or folders) are left out, as are files past ``limit`` bytes in
    all, taken in path order.
    """
    if not folder.is_dir() or folder.is_symlink():
        return (), []
    found = []
    for top, folders, names in os.walk(folder, followlinks=False):
        folders.sort()
        found.extend(Path(top) / name for name in names)
        found.extend(Path(top) / name for name in folders if (Path(top) / name).is_symlink())
    files, left_out, total = [], [], 0
    for path in sorted(found):
        relative = path.relative_to(folder)
        if _ignored(relative, ignore):
            continue
        if path.is_symlink():
            left_out.append(f"{relative} (a symbolic link)")
            continue
        if not path.is_file():
            continue
        size = path.stat().st_size
        if total + size > limit:
            left_out.append(f"{relative} (past the {limit // 2**20} MiB a folder may carry)")
            continue
        total += size
        files.append((relative.as_posix(), read_no_link(path)))
    return tuple(files), left_out


def read_no_link(path: Path) -> bytes:
    """The file's bytes, refusing a link put in its place since it was listed."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def write_folder(folder: Path, files: Files) -> None:
    """Write ``files`` under ``folder``; a path that would leave the folder is an error."""
    base = folder.resolve()
    for relative, content in files:
        target = (base / relative).resolve()
        if base not in target.parents:
            raise ValueError(f"{relative!r} is not inside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
