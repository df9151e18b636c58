"""Where a graded kernel runs: as the submission's own unprivileged user, away from secrets.

The gatekeeper guards Docker; this guards the grading host. A kernel started through
``ConfinedKernelManager`` runs ``graders.confine`` first (see there), so the student's code
cannot reach the daemon's socket, read solutions or gradebooks, write outside its scratch
folder, or outlive its submission. Confinement needs root (to switch users); without it
grading still works, with the gatekeeper alone.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from .settings import project_root

#: Submissions get users from this range, one per namespace, none of them in /etc/passwd.
FIRST_UID, UID_COUNT = 2_000_000, 1_000_000


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

    @property
    def uid(self) -> int:
        digest = hashlib.sha256(self.namespace.encode()).digest()
        return FIRST_UID + int.from_bytes(digest[:8], "big") % UID_COUNT

    def prepare(self) -> None:
        """The scratch folder becomes the submission user's home and only writable place."""
        os.chown(self.scratch, self.uid, self.uid)
        os.chmod(self.scratch, 0o700)

    def wrap(self, command: list[str]) -> list[str]:
        python = Path(sys.executable)
        reachable = {sys.prefix, sys.base_prefix, str(python.parent), os.path.realpath(python),
                     str(project_root()), str(self.scratch)}
        options = [f"--expose={path}" for path in sorted(reachable)]
        options += [f"--hide={path}" for path in self.hidden]
        return [sys.executable, "-m", "graders.confine", f"--uid={self.uid}",
                f"--scratch={self.scratch}", f"--processes={self.processes}",
                f"--memory={self.memory}", *options, "--", *command]

    def end(self) -> None:
        """Kill whatever the submission's user still runs: nothing outlives its grading."""
        subprocess.run(["kill", "-KILL", "-1"], user=self.uid, group=self.uid,
                       extra_groups=[], capture_output=True, check=False)


class ConfinedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels start through ``graders.confine``."""

    confinement: Confinement | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        return self.confinement.wrap(command) if self.confinement else command


def secrets(course_dir: Path | None) -> list[str]:
    """What a kernel must not read: solutions and the instructor's grading files."""
    paths = [project_root() / "source"]
    if course_dir is not None:
        paths += [course_dir / name for name in ("source", "submitted", "autograded", "feedback",
                                                 "grading", "gradebook.db")]
    return sorted({str(p) for p in paths})
