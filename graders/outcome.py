"""The one record of a submission's grading, from the judge to the gradebook and the exports.

The grading preprocessor starts it (how execution ended, each grade cell's verdict), the worker
adds where and how long, the coordinator adds the recorded score; the recorder stores it beside
the autograded notebook, and the summary, the status CSV and the Gradescope files read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
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


#: The status CSV's columns, in order.
STATUS_COLUMNS = ("student_id", "assignment", "status", "score", "max_score", "seconds", "detail")


@dataclass
class Outcome:
    """What happened to one submission, and what it scored."""

    student: str = ""
    assignment: str = ""
    status: Status = Status.GRADED
    detail: str = ""
    namespace: str = ""
    #: Executing the notebook: kernel, judge and all.
    seconds: float = 0.0
    #: The whole grading of the submission in its worker: sanitize, execute, record, feedback.
    wall_seconds: float = 0.0
    worker: str = ""
    restored_cells: list[str] = field(default_factory=list)
    swept: int = 0
    sweep_failures: list[str] = field(default_factory=list)
    #: What the gatekeeper refused the submission, first ones only.
    refused: list[str] = field(default_factory=list)
    #: Each judged grade cell by grade id: {"score", "max_score", "error"}, as the judge decided.
    verdicts: dict[str, dict] = field(default_factory=dict)
    #: The score recorded in the gradebook (None: nothing recorded by this run) and the maximum.
    score: float | None = None
    max_score: float = 0.0

    def row(self) -> dict:
        """The submission's line in the status CSV."""
        return {"student_id": self.student, "assignment": self.assignment,
                "status": self.status.value, "score": self.score, "max_score": self.max_score,
                "seconds": self.seconds, "detail": self.detail}

    def save(self, path: Path) -> None:
        data = asdict(self)
        data["status"] = self.status.value
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Outcome:
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        data = {key: value for key, value in data.items() if key in known}
        data["status"] = Status(data.get("status", Status.GRADED.value))
        return cls(**data)
