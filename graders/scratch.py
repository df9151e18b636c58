"""Temporary folders that live as long as the process that made them.

A grading worker keeps a private course folder and gradebook for its whole life. atexit alone
does not remove them: pool workers leave through ``os._exit``, which skips atexit, and a class
of workers left a folder of a few megabytes each in the temporary directory, run after run.
Multiprocessing's own finalizers run on that way out, so the folder is given to both.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from multiprocessing import util
from pathlib import Path


def process_folder(prefix: str) -> Path:
    """A new private folder, removed when this process ends normally (not when it is killed)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    owner = os.getpid()
    atexit.register(_remove, folder, owner)
    util.Finalize(None, _remove, args=(folder, owner), exitpriority=0)
    return folder


def _remove(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked child inherits both hooks, not the folder
        shutil.rmtree(folder, ignore_errors=True)
