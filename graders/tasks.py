"""What travels between the grading coordinator and its workers: plain, picklable data.

A task carries everything a worker needs (the assignment as the coordinator prepared it and the
submission's bytes), so a worker on another machine with its own Docker daemon can grade it
without a shared filesystem. A result carries everything the coordinator records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .outcome import Outcome, Status


@dataclass(frozen=True)
class AssignmentBundle:
    """An assignment as a worker needs it, made once by the coordinator (graders.bundles).

    The source notebook (solutions and hidden tests), the release notebook (to put back deleted
    cells) and an SQLite gradebook with only this assignment's cells: a worker writes them into
    its private course folder once per version instead of running nbgrader to make them.
    """

    assignment: str
    source: bytes
    release: bytes
    gradebook: bytes

    @property
    def key(self) -> str:
        """Identifies this exact version, so a worker prepares it once and reuses it."""
        return f"{self.assignment}-{hashlib.sha256(self.source).hexdigest()[:16]}"


@dataclass(frozen=True)
class GradingTask:
    """Grade one student's submission of one assignment."""

    bundle: AssignmentBundle
    student: str
    namespace: str
    notebook: bytes
    timestamp: str = ""
    cell_timeout: int = 30
    submission_timeout: int = 300
    feedback: bool = True
    #: Each submission reaches Docker only through its own gatekeeper (see graders/gatekeeper).
    gatekeeper: bool = True
    #: Overrides of the gatekeeper's Limits as (name, value) pairs, e.g. (("max_containers", 30),).
    limits: tuple[tuple[str, int], ...] = ()
    #: Paths on the grading host the kernel must not see (the course's solutions, gradebook).
    private_paths: tuple[str, ...] = ()


@dataclass
class CellGrade:
    """One grade cell's result, as nbgrader's SaveAutoGrades would record it."""

    name: str
    auto_score: float | None
    needs_manual_grade: bool


@dataclass
class GradingResult:
    """How one task ended (its Outcome), with the grades and files the coordinator writes."""

    outcome: Outcome
    grades: list[CellGrade] = field(default_factory=list)
    comments: dict[str, str | None] = field(default_factory=dict)
    autograded: bytes = b""
    feedback_html: bytes = b""

    @property
    def student(self) -> str:
        return self.outcome.student

    @property
    def status(self) -> Status:
        return self.outcome.status
