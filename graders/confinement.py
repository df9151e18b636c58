"""Where a graded kernel runs: as the submission's own unprivileged user, away from secrets.

The gatekeeper guards Docker; this guards the grading host. A kernel started through
``ConfinedKernelManager`` runs ``graders.confine`` first (see there), so the student's code
cannot reach the daemon's socket, read solutions or gradebooks, write outside its scratch
folder, or outlive its submission, and no other user can reach the kernel's channels.
Confinement needs root (to switch users); without it grading still works, with the gatekeeper
alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from .settings import project_root

#: Submissions get users from this range, one per namespace, none of them in /etc/passwd.
FIRST_UID, UID_COUNT = 2_000_000, 1_000_000
#: The only folder of the checkout a kernel sees: notebooks import graders.lab.
PACKAGE = Path(__file__).resolve().parent


def available() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


@dataclass
class Confinement:
    namespace: str
    scratch: Path
    #: Folders and files the kernel must not see, e.g. the course's source/ and gradebook.
    hidden: list[str] = field(default_factory=list)
    processes: int = 128
    memory: int = 3 * 2**30
    #: The kernel's connection file and channel sockets: made by open_channels(), removed by
    #: end().
    channels: Path | None = field(default=None, init=False)

    @property
    def uid(self) -> int:
        digest = hashlib.sha256(self.namespace.encode()).digest()
        return FIRST_UID + int.from_bytes(digest[:8], "big") % UID_COUNT

    def prepare(self) -> None:
        """The scratch folder becomes the submission user's home and only writable place."""
        os.chown(self.scratch, self.uid, self.uid)
        os.chmod(self.scratch, 0o700)

    def open_channels(self) -> Path:
        """A folder for the kernel's channels that only its user (and root) can enter: over
        TCP on 127.0.0.1 any local process could connect to them, e.g. subscribe to iopub and
        read another submission's code and outputs. In /tmp, short enough for the 107 bytes a
        Unix socket's path may have, and outside the covered checkout."""
        self.channels = Path(tempfile.mkdtemp(prefix="course-kernel-", dir="/tmp"))
        os.chown(self.channels, self.uid, self.uid)
        return self.channels

    def wrap(self, command: list[str]) -> list[str]:
        return self._confine(["--", *command])

    def wrap_module(self, module: str, arguments: list[str]) -> list[str]:
        """Run ``module`` confined in the same process that drops privileges: not dumpable
        (see graders.confine), so the submission's user cannot reach into it."""
        return self._confine([f"--module={module}", "--", *arguments])

    def _confine(self, tail: list[str]) -> list[str]:
        python = Path(sys.executable)
        reachable = {sys.prefix, sys.base_prefix, str(python.parent), os.path.realpath(python),
                     str(PACKAGE), str(self.scratch)}
        options = [f"--expose={path}" for path in sorted(reachable)]
        options += [f"--cover={project_root()}"]  # .git, source/, tests/, examples/ and the rest
        options += [f"--hide={path}" for path in self.hidden]
        if self.channels is not None:
            options.append(f"--channels={self.channels}")
        return [sys.executable, "-I", "-m", "graders.confine", f"--uid={self.uid}",
                f"--scratch={self.scratch}", f"--processes={self.processes}",
                f"--memory={self.memory}", *options, *tail]

    def end(self) -> None:
        """Kill whatever the submission's user still runs: nothing outlives its grading."""
        subprocess.run(["kill", "-KILL", "-1"], user=self.uid, group=self.uid,
                       extra_groups=[], capture_output=True, check=False)
        if self.channels is not None:
            shutil.rmtree(self.channels, ignore_errors=True)


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels start through ``graders.confine`` and talk over Unix
    sockets in their confinement's channel folder."""

    confinement: Confinement | None = None

    def confine(self, confinement: Confinement) -> None:
        self.confinement = confinement
        self.transport = "ipc"
        self.ip = str(confinement.open_channels() / "kernel")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        return self.confinement.wrap(command) if self.confinement else command


def secrets(course_dir: Path) -> list[str]:
    """What a kernel must not read of a course folder (the checkout is covered as a whole):
    solutions and the instructor's grading files."""
    return sorted(str(course_dir / name) for name in ("source", "submitted", "autograded",
                                                      "feedback", "grading", "gradebook.db"))
