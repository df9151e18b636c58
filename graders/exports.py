"""Writing grades out of the gradebook: nbgrader's CSV, the status table, Gradescope files,
and Canvas's gradebook import CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin

from .outcome import STATUS_COLUMNS, Outcome

HIDDEN_MARKER = "### BEGIN HIDDEN TESTS"
#: The student columns Canvas's gradebook import reads, in the order its export writes them.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: The first column of the row under the header giving each assignment's points.
CANVAS_POINTS_ROW = "Points Possible"


def write_grades_csv(db_url: str, path: Path) -> Path:
    """``grades.csv`` with nbgrader's own columns, in nbgrader's order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(db_url) as gradebook:
        CsvExportPlugin(to=str(path)).export(gradebook)
    return path


def write_status_csv(outcomes: Iterable[Outcome], path: Path) -> Path:
    """One row per submission with how its grading ended, so no status hides behind a score."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=STATUS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for outcome in outcomes:
            writer.writerow(outcome.row())
    return path


def failure_message(cell) -> str:
    """A failed grade cell's error as ``Name: message``, never with the code around it."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return ""


def gradescope_results(notebooks: dict[str, tuple[nbformat.NotebookNode, dict[str, tuple]]],
                       outcome: Outcome, penalty: float = 0.0) -> dict:
    """A Gradescope ``results.json`` for one submission, from each autograded notebook and its
    grades by grade id.

    Each grade cell is one test, named ``notebook/grade id`` when there are several notebooks.
    A cell that contains hidden tests is marked ``hidden``; its output is the error's name and
    message only, so no hidden code is shown. A late penalty comes off the total.
    """
    tests = []
    for name, (autograded, grades) in notebooks.items():
        for cell in autograded.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade") or meta.get("grade_id") not in grades:
                continue
            score, max_score = grades[meta["grade_id"]]
            hidden = HIDDEN_MARKER in cell.source
            tests.append({
                "name": f"{name}/{meta['grade_id']}" if len(notebooks) > 1 else meta["grade_id"],
                "score": score or 0.0,
                "max_score": max_score,
                "status": "passed" if score == max_score else "failed",
                "visibility": "hidden" if hidden else "visible",
                "output": "" if score == max_score else failure_message(cell),
            })
    late = f"; late penalty {penalty:g}" if penalty else ""
    return {
        "score": max(0.0, sum(t["score"] for t in tests) - penalty),
        "execution_time": round(outcome.seconds),
        "output": f"Grading status: {outcome.status.value}"
                  + (f" ({outcome.detail})" if outcome.detail else "") + late,
        "visibility": "visible",
        "tests": tests,
    }


def write_gradescope(root: Path, db_url: str, assignment: str,
                     outcomes: Iterable[Outcome]) -> Path:
    """``exports/gradescope/<assignment>/<student>/results.json`` for every graded submission."""
    out = root / "exports" / "gradescope" / assignment
    with Gradebook(db_url) as gradebook:
        for outcome in outcomes:
            student = outcome.student
            folder = root / "autograded" / student / assignment
            notebooks, penalty = {}, 0.0
            for notebook in gradebook.find_submission(assignment, student).notebooks \
                    if folder.is_dir() else []:
                path = folder / f"{notebook.notebook.name}.ipynb"
                if path.exists():
                    grades = {g.name: (g.score, g.max_score) for g in notebook.grades}
                    notebooks[notebook.notebook.name] = (nbformat.read(str(path), as_version=4),
                                                         grades)
                    penalty += notebook.late_submission_penalty or 0.0
            if not notebooks:
                continue
            target = out / student / "results.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(gradescope_results(notebooks, outcome, penalty),
                                         indent=2))
    return out


def _points(value: float) -> str:
    return format(round(value, 2), "g")


def canvas_rows(gradebook: Gradebook, canvas_ids: dict[str, str] | None = None) -> list[list[str]]:
    """Canvas's gradebook import table: header, points possible, one row per student.

    Canvas matches a student by ID (nbgrader's ``lms_user_id``) or SIS Login ID (the nbgrader
    student id) and an assignment column by the id in parentheses after its name; a column
    without one creates a new assignment of the points given. A score is the submission's
    total less its late penalty, never below zero; no submission leaves the cell blank, which
    Canvas reads as no grade rather than zero.
    """
    canvas_ids = canvas_ids or {}
    assignments = sorted(gradebook.assignments, key=lambda a: (a.duedate is None, a.duedate,
                                                                a.name))
    header = [*CANVAS_COLUMNS, *(f"{a.name} ({canvas_ids[a.name]})" if a.name in canvas_ids
                                 else a.name for a in assignments)]
    rows = [header, [CANVAS_POINTS_ROW, "", "", "", "",
                     *(_points(a.max_score) for a in assignments)]]
    for student in sorted(gradebook.students, key=lambda s: s.id):
        named = ", ".join(part for part in (student.last_name, student.first_name) if part)
        row = [named or student.id, student.lms_user_id or "", "", student.id, ""]
        for assignment in assignments:
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                row.append("")
                continue
            penalty = submission.late_submission_penalty or 0.0
            row.append(_points(max(0.0, submission.score - penalty)))
        rows.append(row)
    return rows


def write_canvas_csv(db_url: str, path: Path, canvas_ids: dict[str, str] | None = None) -> Path:
    """The gradebook as a CSV to import in Canvas (Grades, Import)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(db_url) as gradebook, path.open("w", newline="") as handle:
        csv.writer(handle).writerows(canvas_rows(gradebook, canvas_ids))
    return path
