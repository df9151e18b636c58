"""Running apt-get for what the course needs (Docker, busybox-static, docker-registry).

Every run is non-interactive and bounded in time, and a failure raises the caller's error with
the command and the last lines apt printed, plus the command to run by hand.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import CourseError

Step = Callable[[str], None]

#: The dpkg lock timeout rides out a concurrent unattended-upgrades run.
LOCK = ["-o", "DPkg::Lock::Timeout=60"]


def _run(argv: list[str], limit: float, error: type[CourseError], remedy: str, step: Step,
         cwd: Path | None = None, shown: str | None = None) -> None:
    """Run one apt command; raise ``error`` saying plainly what failed."""
    shown = shown or " ".join(argv)
    step(f"Running `{shown}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=limit, cwd=cwd,
        )
    except FileNotFoundError:
        raise error(f"`{shown}` failed: {argv[0]} not found.", remedy) from None
    except subprocess.TimeoutExpired:
        raise error(f"`{shown}` did not finish within {limit:g} s.", remedy) from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise error(f"`{shown}` failed:\n{tail}", remedy)


def apt_install(
    packages: Sequence[str], error: type[CourseError], on_step: Step | None = None,
    downgrade: bool = False,
) -> None:
    """Install Debian packages (``name`` or ``name/release``) after an update; failures raise
    ``error``. ``downgrade`` lets ``name/release`` replace a newer version of another release."""
    step = on_step or (lambda _message: None)
    names = " ".join(packages)
    extra = ["--allow-downgrades"] if downgrade else []
    wanted = " ".join([*extra, names])
    remedy = f"Install it by hand: `sudo apt-get update && sudo apt-get install {wanted}`."
    _run(["apt-get", *LOCK, "update"], 300, error, remedy, step)
    _run(["apt-get", *LOCK, "install", "-y", *extra, *packages], 900, error, remedy, step)


def apt_update(error: type[CourseError], on_step: Step | None = None,
               options: Sequence[str] = ()) -> None:
    """``apt-get update`` with extra ``options`` (e.g. a private set of sources and lists)."""
    step = on_step or (lambda _message: None)
    _run(["apt-get", *options, "update"], 300, error,
         "Check that the Debian mirror answers (`apt-get update`).", step,
         shown="apt-get update" + (" (private sources)" if options else ""))


def apt_download(packages: Sequence[str], folder: Path, error: type[CourseError],
                 on_step: Step | None = None, options: Sequence[str] = ()) -> None:
    """Download the .deb files of ``packages`` into ``folder``, installing nothing."""
    step = on_step or (lambda _message: None)
    names = " ".join(packages)
    _run(["apt-get", *options, "download", *packages], 600, error,
         f"Check that the Debian mirror answers, then try `apt-get download {names}`.", step,
         cwd=folder, shown=f"apt-get download {names}")
