"""Writing grades out of the gradebook: nbgrader's CSV and the course's status table."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.plugins import CsvExportPlugin

STATUS_COLUMNS = ("student_id", "assignment", "status", "score", "max_score", "seconds", "detail")


def write_grades_csv(db_url: str, path: Path) -> Path:
    """``grades.csv`` with nbgrader's own columns, in nbgrader's order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(db_url) as gradebook:
        CsvExportPlugin(to=str(path)).export(gradebook)
    return path


def write_status_csv(rows: Iterable[dict], path: Path) -> Path:
    """One row per submission with how its grading ended, so no status hides behind a score."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=STATUS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path
