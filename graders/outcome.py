"""How one submission's execution ended, as recorded by the grading preprocessor."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path


class Status(str, Enum):
    """Every submission ends with exactly one of these."""

    GRADED = "graded"
    TIMED_OUT = "timed out"
    KERNEL_DIED = "kernel died"
    INVALID = "invalid notebook"
    INFRASTRUCTURE = "infrastructure error"
    ALREADY_GRADED = "already graded"


@dataclass
class Outcome:
    """What happened while executing one submission, written beside its autograded notebook."""

    status: Status = Status.GRADED
    detail: str = ""
    namespace: str = ""
    seconds: float = 0.0
    #: The whole grading of the submission in its worker: sanitize, execute, record, feedback.
    wall_seconds: float = 0.0
    restored_cells: list[str] = field(default_factory=list)
    swept: int = 0
    sweep_failures: list[str] = field(default_factory=list)
    #: What the gatekeeper refused the submission, first ones only.
    refused: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        data = asdict(self)
        data["status"] = self.status.value
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Outcome:
        data = json.loads(path.read_text())
        data["status"] = Status(data["status"])
        return cls(**data)
