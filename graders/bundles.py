"""Packing an assignment once, in the coordinator, so workers need not run nbgrader to set it up.

The coordinator has already generated the release and put the assignment's cells into its
gradebook. A bundle carries the results (the source folder, the released notebooks and a small
SQLite gradebook holding only this assignment's cells), so a worker writes files instead of
running nbgrader's generate_assignment once per assignment, which costs a few seconds each time.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from nbgrader.api import Gradebook

from .folders import read_folder
from .nbgrader_env import sqlite_url, stamp_new_gradebook
from .scratch import process_folder
from .tasks import AssignmentBundle

#: The most an assignment's source folder may carry to the workers.
ASSIGNMENT_BYTES = 256 * 1024 * 1024


def make_bundle(root: Path, db_url: str, assignment: str, release_dir: Path) -> AssignmentBundle:
    """The bundle of ``assignment``, whose release (in ``release_dir``) and gradebook cells
    already exist."""
    source, _ = read_folder(root / "source" / assignment, limit=ASSIGNMENT_BYTES)
    release, _ = read_folder(release_dir / assignment, limit=ASSIGNMENT_BYTES)
    notebooks = tuple((path, content) for path, content in release if path.endswith(".ipynb"))
    config = tuple((path.name, path.read_bytes()) for path in sorted(root.glob("*.py"))
                   if path.is_file() and not path.is_symlink())
    with tempfile.TemporaryDirectory(prefix="course-bundle-") as scratch:
        gradebook = Path(scratch) / "gradebook.db"
        shutil.copy(_empty_gradebook(), gradebook)
        copy_assignment(db_url, sqlite_url(gradebook), assignment)
        return AssignmentBundle(assignment, source, notebooks, gradebook.read_bytes(), config)


def copy_assignment(from_url: str, to_url: str, assignment: str) -> None:
    """Copy the cells nbgrader's autograde reads (grade, solution, task, source) to a gradebook."""
    with Gradebook(from_url) as origin:
        found = origin.find_assignment(assignment)
        with Gradebook(to_url, found.course_id) as target:
            target.update_or_create_assignment(assignment, duedate=found.duedate)
            for notebook in found.notebooks:
                where = (notebook.name, assignment)
                target.update_or_create_notebook(*where, kernelspec=notebook.kernelspec)
                for cell in notebook.grade_cells:
                    target.update_or_create_grade_cell(cell.name, *where,
                                                       max_score=cell.max_score,
                                                       cell_type=cell.cell_type)
                for cell in notebook.task_cells:
                    target.update_or_create_task_cell(cell.name, *where,
                                                      max_score=cell.max_score,
                                                      cell_type=cell.cell_type)
                for cell in notebook.solution_cells:
                    target.update_or_create_solution_cell(cell.name, *where)
                for cell in notebook.source_cells:
                    target.update_or_create_source_cell(cell.name, *where,
                                                        cell_type=cell.cell_type,
                                                        locked=cell.locked, source=cell.source,
                                                        checksum=cell.checksum)


@functools.cache
def _empty_gradebook() -> Path:
    """An empty gradebook (nbgrader's tables, no assignment), made once per process."""
    path = process_folder("course-empty-gradebook-") / "gradebook.db"
    stamp_new_gradebook(sqlite_url(path))
    with Gradebook(sqlite_url(path)):
        pass
    return path
