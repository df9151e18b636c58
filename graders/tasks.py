"""What travels between the grading coordinator and its workers: plain, picklable data.

A task carries everything a worker needs (the assignment as the coordinator prepared it and the
submission's bytes), so a worker on another machine with its own Docker daemon can grade it
without a shared filesystem. A result carries everything the coordinator records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .outcome import Outcome, Status

#: A folder's files as (path relative to the folder, content) pairs, sorted by path.
Files = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class AssignmentBundle:
    """An assignment as a worker needs it, made once by the coordinator (graders.bundles).

    Every file of the source folder (notebooks with solutions and hidden tests, and the support
    files nbgrader copies over a submission), the released notebooks (to put back deleted
    cells), the course's nbgrader configuration and an SQLite gradebook with only this
    assignment's cells: a worker writes them into its private course folder once per version
    instead of running nbgrader to make them.
    """

    assignment: str
    source: Files
    release: Files
    gradebook: bytes
    #: The course folder's nbgrader_config.py and the modules beside it (a late-penalty plugin).
    config: Files = ()

    @property
    def notebooks(self) -> list[str]:
        """The assignment's notebook names (no suffix), as nbgrader names them."""
        return [path.removesuffix(".ipynb") for path, _ in self.release
                if path.endswith(".ipynb") and "/" not in path]

    @property
    def key(self) -> str:
        """Identifies this exact version, so a worker prepares it once and reuses it."""
        digest = hashlib.sha256()
        for path, content in self.source + self.config:
            digest.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
        return f"{self.assignment}-{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class GradingTask:
    """Grade one student's submission of one assignment."""

    bundle: AssignmentBundle
    student: str
    namespace: str
    #: The submission folder's files: its notebooks and whatever else the student handed in.
    files: Files
    #: What of the submission folder was not sent, and why (symbolic links, past the size cap).
    left_out: tuple[str, ...] = ()
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

    notebook: str
    name: str
    auto_score: float | None
    needs_manual_grade: bool


@dataclass
class GradingResult:
    """How one task ended (its Outcome), with the grades and files the coordinator writes."""

    outcome: Outcome
    grades: list[CellGrade] = field(default_factory=list)
    #: nbgrader's late-submission penalty of each notebook (AssignLatePenalties), by name.
    penalties: dict[str, float | None] = field(default_factory=dict)
    #: Each comment by (notebook, grade id).
    comments: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: The autograded notebooks and the feedback pages, by file name.
    autograded: dict[str, bytes] = field(default_factory=dict)
    feedback_html: dict[str, bytes] = field(default_factory=dict)

    @property
    def student(self) -> str:
        return self.outcome.student

    @property
    def status(self) -> Status:
        return self.outcome.status
