"""The coordinator's side of grading: the one place that writes the gradebook and result files."""

from __future__ import annotations

from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.utils import parse_utc

from .outcome import Outcome, Status
from .tasks import GradingResult

#: Statuses after which a submission counts as done and is not graded again without --force.
FINAL = frozenset({Status.GRADED, Status.TIMED_OUT, Status.KERNEL_DIED, Status.INVALID})


class Recorder:
    """Writes results of one assignment into a course folder and its gradebook."""

    def __init__(self, root: Path, db_url: str, assignment: str) -> None:
        self.root = root
        self.db_url = db_url
        self.assignment = assignment
        self.outcomes = root / "grading" / assignment
        self.outcomes.mkdir(parents=True, exist_ok=True)

    def outcome_path(self, student: str) -> Path:
        return self.outcomes / f"{student}.json"

    def previous(self, student: str) -> Outcome | None:
        """The recorded outcome of an earlier run, if it ended with a final status."""
        path = self.outcome_path(student)
        if not path.exists():
            return None
        outcome = Outcome.load(path)
        return outcome if outcome.status in FINAL else None

    def record(self, result: GradingResult, timestamp: str = "") -> Outcome:
        """Store a final result: grades first, then files, then the outcome that marks it done;
        the outcome comes back with the score now recorded.

        An infrastructure error records nothing, so the old grades (if any) stay and the next
        run grades the submission again; its outcome has no score.
        """
        outcome = result.outcome
        outcome.score, outcome.max_score = self.score(outcome.student)
        if outcome.status not in FINAL:
            outcome.score = None  # whatever is recorded is from an earlier run, not this one
            return outcome
        self._write_grades(result, timestamp)
        self._write_files(result)
        outcome.score, outcome.max_score = self.score(outcome.student)
        outcome.save(self.outcome_path(outcome.student))
        return outcome

    def _write_grades(self, result: GradingResult, timestamp: str) -> None:
        extra = {"timestamp": parse_utc(timestamp)} if timestamp else {}
        with Gradebook(self.db_url) as gradebook:
            gradebook.update_or_create_student(result.student)
            submission = gradebook.update_or_create_submission(self.assignment, result.student,
                                                               **extra)
            scores = {(g.notebook, g.name): g for g in result.grades}
            for notebook in submission.notebooks:
                name = notebook.notebook.name
                for grade in notebook.grades:
                    cell = scores.get((name, grade.name))
                    grade.auto_score = cell.auto_score if cell else 0
                    grade.needs_manual_grade = (grade.manual_score is not None
                                                or grade.auto_score is None)
                for comment in notebook.comments:
                    comment.auto_comment = result.comments.get((name, comment.name))
                notebook.late_submission_penalty = result.penalties.get(name)
            gradebook.db.commit()

    def _write_files(self, result: GradingResult) -> None:
        """The autograded notebooks and feedback pages, replacing what an earlier run wrote."""
        for step, files, suffix in (("autograded", result.autograded, ".ipynb"),
                                    ("feedback", result.feedback_html, ".html")):
            folder = self.root / step / result.student / self.assignment
            for stale in folder.glob(f"*{suffix}"):
                if stale.name not in files:
                    stale.unlink()
            for name, content in files.items():
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).unlink(missing_ok=True)
                (folder / name).write_bytes(content)

    def score(self, student: str) -> tuple[float | None, float]:
        """The student's recorded score and the assignment's maximum."""
        with Gradebook(self.db_url) as gradebook:
            maximum = gradebook.find_assignment(self.assignment).max_score
            try:
                return gradebook.find_submission(self.assignment, student).score, maximum
            except Exception:  # MissingEntry: nothing recorded yet
                return None, maximum
