"""Installing Debian packages the course needs (Docker, busybox-static, docker-registry)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence

from .errors import CourseError

Step = Callable[[str], None]


def apt_install(
    packages: Sequence[str], error: type[CourseError], on_step: Step | None = None
) -> None:
    """Install Debian packages non-interactively, bounded in time; failures raise ``error``.

    The dpkg lock timeout rides out a concurrent unattended-upgrades run.
    """
    step = on_step or (lambda _message: None)
    names = " ".join(packages)
    remedy = f"Install it by hand: `sudo apt-get update && sudo apt-get install {names}`."
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=60"]
    for argv, limit in (
        (["apt-get", *lock, "update"], 300),
        (["apt-get", *lock, "install", "-y", *packages], 900),
    ):
        step(f"Running `{' '.join(argv)}`")
        try:
            result = subprocess.run(
                argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=limit,
            )
        except FileNotFoundError:
            raise error(f"Cannot install {names}: apt-get not found.", remedy) from None
        except subprocess.TimeoutExpired:
            raise error(f"`{' '.join(argv)}` did not finish within {limit} s.", remedy) from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise error(f"`{' '.join(argv)}` failed:\n{tail}", remedy)
