"""A cgroup of the submission's own, above all its containers and build steps.

The classic builder has no pids limit for ``RUN`` steps, and a container's own limits can be
raised by ``docker update``. A cgroup the gatekeeper creates and limits itself, given to the
daemon as every container's and every build's cgroup parent, bounds them all together: the
kernel enforces a parent's limits over its children whatever they ask for. It needs the
daemon's cgroupfs driver and a grader that may write the host's cgroup tree (root); where that
is not so, ``SubmissionCgroup.create`` gives None and containers keep their own limits only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "course-gatekeeper-"


@dataclass
class SubmissionCgroup:
    """``/<PREFIX><namespace>`` in every controller that limits, with ``build`` below it."""

    name: str

    @property
    def parent(self) -> str:
        """The cgroup parent for the submission's containers."""
        return f"/{self.name}"

    @property
    def build_parent(self) -> str:
        """The cgroup parent for its build steps: tighter, as RUN steps have no own limit."""
        return f"/{self.name}/build"

    @classmethod
    def create(cls, namespace: str, driver: str, *, memory: int, pids: int,
               build_memory: int, build_pids: int) -> SubmissionCgroup | None:
        if driver != "cgroupfs" or os.geteuid() != 0 or not ROOT.is_dir():
            return None
        name = f"{PREFIX}{namespace}"
        try:
            if (ROOT / "cgroup.controllers").exists():
                _create_v2(name, memory, pids, build_memory, build_pids)
            else:
                _create_v1(name, memory, pids, build_memory, build_pids)
        except OSError:
            cls(name).remove()
            return None
        return cls(name)

    def remove(self) -> None:
        """Remove the cgroup, in every controller, once the daemon has removed the containers
        in it (runc makes the parent in controllers that carry no limit of ours as well)."""
        folders = [*ROOT.glob(f"*/{self.name}/build"), *ROOT.glob(f"*/{self.name}"),
                   ROOT / self.name / "build", ROOT / self.name]
        for folder in folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the daemon is still removing a container's cgroup


def _write(path: Path, value: int | str) -> None:
    path.write_text(f"{value}\n")


def _create_v1(name: str, memory: int, pids: int, build_memory: int, build_pids: int) -> None:
    for controller, file, top, below in (("pids", "pids.max", pids, build_pids),
                                         ("memory", "memory.limit_in_bytes", memory,
                                          build_memory)):
        base = ROOT / controller / name
        for folder, value in ((base, top), (base / "build", below)):
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder / file, value)


def _create_v2(name: str, memory: int, pids: int, build_memory: int, build_pids: int) -> None:
    controllers = "+pids +memory"
    _write(ROOT / "cgroup.subtree_control", controllers)
    folder, build = ROOT / name, ROOT / name / "build"
    folder.mkdir(exist_ok=True)
    _write(folder / "cgroup.subtree_control", controllers)
    build.mkdir(exist_ok=True)
    for path, (mem, count) in ((folder, (memory, pids)), (build, (build_memory, build_pids))):
        _write(path / "pids.max", count)
        _write(path / "memory.max", mem)
