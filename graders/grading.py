"""Autograding the submissions of one assignment: the coordinator of a grading run.

Each submission goes through nbgrader's autograde pipeline with the course's two preprocessors
(restore deleted cells; execute with injected parameters, time limits and a Docker sweep), gets
exactly one status, and a score in the gradebook. One bad submission never stops the batch.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)

from . import settings
from .daemon_lock import exclusive_grading
from .errors import GradingError
from .exports import write_grades_csv, write_status_csv
from .feedback import generate_feedback
from .namespace import Namespace
from .nbgrader_env import course_config, sqlite_url, tools_on_path
from .outcome import Outcome, Status
from .preprocessors import ExecuteParameterized, RestoreDeletedCells
from .release import generate_release
from .sweep import Snapshot, remove_new_since

EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception)\b.*:")

#: Statuses after which a submission counts as done and is not graded again without --force.
FINAL = {Status.GRADED, Status.TIMED_OUT, Status.KERNEL_DIED, Status.INVALID}


@dataclass
class GradingOptions:
    """Everything a grading run can be told; the CLI flags only set these."""

    cell_timeout: int = settings.CELL_TIMEOUT
    submission_timeout: int = settings.SUBMISSION_TIMEOUT
    force: bool = False
    students: list[str] | None = None
    db_url: str | None = None
    feedback: bool = True


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    status: Status
    score: float | None
    max_score: float
    seconds: float = 0.0
    detail: str = ""

    def row(self) -> dict:
        return {"student_id": self.student, "assignment": self.assignment,
                "status": self.status.value, "score": self.score, "max_score": self.max_score,
                "seconds": self.seconds, "detail": self.detail}


@dataclass
class BatchResult:
    assignment: str
    results: list[SubmissionResult] = field(default_factory=list)
    grades_csv: Path | None = None
    status_csv: Path | None = None
    feedback_dir: Path | None = None
    exclusive: bool = False
    swept_after_batch: int = 0


def find_students(root: Path, assignment: str) -> list[str]:
    """Students with a submission folder for ``assignment``, sorted."""
    submitted = root / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


class AssignmentGrader:
    """Grades submissions of one assignment in one course folder, one at a time."""

    def __init__(self, root: Path, assignment: str, options: GradingOptions,
                 exclusive: bool = False) -> None:
        self.root = root.resolve()
        self.assignment = assignment
        self.options = options
        self.exclusive = exclusive
        self.db_url = options.db_url or sqlite_url(self.root / "gradebook.db")
        self.outcomes = self.root / "grading" / assignment

    def prepare(self) -> None:
        """Put the assignment (cells, hidden tests, points) into the gradebook."""
        if not (self.root / "source" / self.assignment / f"{self.assignment}.ipynb").exists():
            raise GradingError(f"no source notebook for {self.assignment} in {self.root}/source",
                               remedy="Check the assignment id and --course-dir.")
        generate_release(self.root, self.root / "release", assignments=[self.assignment],
                         db_url=self.db_url)
        self.outcomes.mkdir(parents=True, exist_ok=True)

    def grade(self, student: str) -> SubmissionResult:
        outcome_path = self.outcomes / f"{student}.json"
        if not self.options.force and outcome_path.exists():
            previous = Outcome.load(outcome_path)
            if previous.status in FINAL:
                return self._result(student, Status.ALREADY_GRADED,
                                    f"previously {previous.status.value}; use --force to regrade")
        notebook = self.root / "submitted" / student / self.assignment / f"{self.assignment}.ipynb"
        problem = _unreadable(notebook)
        if problem:
            self._record_zero(student)
            Outcome(status=Status.INVALID, detail=problem).save(outcome_path)
            return self._result(student, Status.INVALID, problem)
        outcome_path.unlink(missing_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"course-{student}-"))
        try:
            result = self._autograde(student, outcome_path, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        outcome = Outcome.load(outcome_path) if outcome_path.exists() else None
        if result["success"] and outcome:
            if self.options.feedback:
                generate_feedback(self.root, self.db_url, self.assignment, student)
            return self._result(student, outcome.status, outcome.detail, outcome.seconds)
        if outcome is None:
            # Execution never started: nbgrader rejected the notebook while sanitizing it.
            detail = "nbgrader could not process the notebook: " + _first_error(result)
            self._record_zero(student)
            Outcome(status=Status.INVALID, detail=detail).save(outcome_path)
            return self._result(student, Status.INVALID, detail)
        outcome_path.unlink(missing_ok=True)
        detail = outcome.detail if outcome.status == Status.INFRASTRUCTURE else _first_error(result)
        return SubmissionResult(student, self.assignment, Status.INFRASTRUCTURE, None,
                                self._max_score(), detail=detail)

    def _autograde(self, student: str, outcome_path: Path, scratch: Path) -> dict:
        namespace = Namespace.for_submission(self.assignment, student, salt=str(self.root))
        config = course_config(
            self.root, self.db_url,
            Autograde={
                "sanitize_preprocessors": [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                           RestoreDeletedCells, OverwriteCells,
                                           CheckCellMetadata],
                "autograde_preprocessors": [ExecuteParameterized, IgnorePattern,
                                            ClearMetadataPreprocessor, LimitOutput,
                                            SaveAutoGrades, AssignLatePenalties,
                                            CheckCellMetadata],
            },
            RestoreDeletedCells={"release_notebook": str(
                self.root / "release" / self.assignment / f"{self.assignment}.ipynb")},
            ExecuteParameterized={
                "timeout": self.options.cell_timeout,
                "submission_timeout": self.options.submission_timeout,
                "namespace": namespace.value,
                "exclusive_daemon": self.exclusive,
                "outcome_file": str(outcome_path),
                "parameters": {
                    "NAMESPACE": namespace.value,
                    "BUSYBOX_IMAGE": settings.BUSYBOX_IMAGE,
                    "REGISTRY_IMAGE": settings.REGISTRY_IMAGE,
                    "SCRATCH_DIR": str(scratch),
                },
            },
        )
        with tools_on_path():
            return NbGraderAPI(config=config).autograde(self.assignment, student, force=True,
                                                        create=True)

    def _record_zero(self, student: str) -> None:
        """Give every graded cell of the submission 0, as nbgrader does for a missing notebook."""
        with Gradebook(self.db_url) as gradebook:
            gradebook.update_or_create_student(student)
            submission = gradebook.update_or_create_submission(self.assignment, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score = 0
                    grade.manual_score = None
                    grade.needs_manual_grade = False
            gradebook.db.commit()

    def _max_score(self) -> float:
        with Gradebook(self.db_url) as gradebook:
            return gradebook.find_assignment(self.assignment).max_score

    def _result(self, student: str, status: Status, detail: str,
                seconds: float = 0.0) -> SubmissionResult:
        with Gradebook(self.db_url) as gradebook:
            try:
                submission = gradebook.find_submission(self.assignment, student)
                score, max_score = submission.score, submission.max_score
            except MissingEntry:
                score, max_score = None, gradebook.find_assignment(self.assignment).max_score
        return SubmissionResult(student, self.assignment, status, score, max_score,
                                seconds, detail)


def _unreadable(path: Path) -> str:
    """Why the submitted notebook cannot be graded, or "" when it can be read and validated."""
    if not path.exists():
        return f"no notebook submitted (expected {path.name})"
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # nbformat raises JSON, validation and reader errors alike
        return f"not a valid notebook: {str(error).strip().splitlines()[0][:120]}"
    return ""


def _first_error(result: dict) -> str:
    """The most specific error line nbgrader logged: the exception that started the failure."""
    text = f"{result.get('log', '')}\n{result.get('error', '')}"
    for line in text.splitlines():
        stripped = line.strip()
        if EXCEPTION_LINE.match(stripped) and "NbGraderException" not in stripped:
            return stripped[:300]
    return _last_line(text)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def grade_assignment(
    root: Path,
    assignment: str,
    options: GradingOptions | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
    on_start: Callable[[str, int, int], None] | None = None,
) -> BatchResult:
    """Grade every submission of ``assignment`` under ``root/submitted`` and write the exports."""
    import docker

    options = options or GradingOptions()
    root = root.resolve()
    students = options.students or find_students(root, assignment)
    batch = BatchResult(assignment)
    with exclusive_grading() as exclusive:
        batch.exclusive = exclusive
        grader = AssignmentGrader(root, assignment, options, exclusive=exclusive)
        grader.prepare()
        client = docker.from_env()
        before = Snapshot.take(client)
        try:
            for index, student in enumerate(students):
                if on_start:
                    on_start(student, index, len(students))
                result = grader.grade(student)
                batch.results.append(result)
                if on_result:
                    on_result(result)
        finally:
            if exclusive:
                batch.swept_after_batch = remove_new_since(client, before).total
            client.close()
    batch.grades_csv = write_grades_csv(grader.db_url, root / "exports" / "grades.csv")
    batch.status_csv = write_status_csv(
        (r.row() for r in batch.results), root / "exports" / f"{assignment}-status.csv")
    batch.feedback_dir = root / "feedback"
    return batch
