"""Writing grades out of the gradebook: nbgrader's CSV, the status table, Gradescope files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.plugins import CsvExportPlugin

from .outcome import STATUS_COLUMNS, Outcome

HIDDEN_MARKER = "### BEGIN HIDDEN TESTS"


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
