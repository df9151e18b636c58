"""A small ordinary nbgrader course for the classroom tests: assignment ps1 of two notebooks (a
hidden test and a manually graded answer in one, a data file read by the other) and students'
submissions made from its release, each solving the notebooks it is given."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from graders.release import generate_release

ASSIGNMENT = "ps1"
NOTEBOOKS = ("problem1", "problem2")
#: What each notebook's autograded cells give a learner who solves it.
AUTOGRADED_POINTS = {"problem1": 2.0, "problem2": 1.0}
#: Every point of ps1, the manually graded answer's 3 included.
MAX_SCORE = 6.0


def _notebook(cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _cell(kind, source, grade_id, solution=False, grade=False, points=0):
    cell = (new_code_cell if kind == "code" else new_markdown_cell)(source, id=grade_id)
    cell.metadata["nbgrader"] = {"solution": solution, "grade": grade, "locked": not solution,
                                 "grade_id": grade_id, "schema_version": 3,
                                 **({"points": points} if grade else {})}
    return cell


SOURCES = {
    "problem1": _notebook([
        new_markdown_cell("# Squares", id="intro"),
        _cell("code", "def squares(n):\n    ### BEGIN SOLUTION\n    return [i * i for i in "
                      "range(1, n + 1)]\n    ### END SOLUTION", "squares", solution=True),
        _cell("code", "assert squares(1) == [1]\n### BEGIN HIDDEN TESTS\nassert squares(3) == "
                      "[1, 4, 9]\n### END HIDDEN TESTS", "squares-tests", grade=True, points=2),
        _cell("markdown", "YOUR ANSWER HERE", "explain", solution=True, grade=True, points=3),
    ]),
    "problem2": _notebook([
        _cell("code", "def total(path):\n    ### BEGIN SOLUTION\n    return sum(int(x) for x in "
                      "open(path).read().split())\n    ### END SOLUTION", "total", solution=True),
        _cell("code", "assert total('data.txt') == 6\n### BEGIN HIDDEN TESTS\n"
                      "assert total('data.txt') == sum(map(int, open('data.txt').read().split()))"
                      "\n### END HIDDEN TESTS", "total-tests", grade=True, points=1),
    ]),
}


def write_source(root: Path, config: str = "") -> None:
    """source/ps1 (and nbgrader_config.py holding ``config``, if any) under ``root``."""
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for name, nb in SOURCES.items():
        nbformat.write(nb, str(source / f"{name}.ipynb"))
    (source / "data.txt").write_text("1 2 3\n")
    if config:
        (root / "nbgrader_config.py").write_text(config)


def solve(folder: Path, notebooks: set[str]) -> None:
    """Fill in the solution cells of ``notebooks`` in a released copy of ps1 in ``folder``."""
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        nb = nbformat.read(str(path), 4)
        for cell, source_cell in zip(nb.cells, SOURCES[name].cells, strict=True):
            if cell.cell_type == "code" and cell.metadata["nbgrader"]["solution"]:
                cell.source = source_cell.source
        nbformat.write(nb, str(path))


def write_submissions(root: Path, solved: dict[str, set[str]]) -> None:
    """submitted/<student>/ps1 for each student, solving the notebooks ``solved`` names."""
    released = root / "released"
    generate_release(root, released, assignments=[ASSIGNMENT])
    for student, notebooks in solved.items():
        folder = root / "submitted" / student / ASSIGNMENT
        shutil.copytree(released / ASSIGNMENT, folder)
        solve(folder, notebooks)
    shutil.rmtree(released)


def scores(db_url: str) -> dict[str, dict[str, float]]:
    """Each student's score per notebook of ps1."""
    with Gradebook(db_url) as gradebook:
        return {s.student.id: {nb.notebook.name: nb.score for nb in s.notebooks}
                for s in gradebook.assignment_submissions(ASSIGNMENT)}


def penalties(db_url: str) -> dict[str, float]:
    """Each student's late penalty on ps1, all notebooks together."""
    with Gradebook(db_url) as gradebook:
        return {s.student.id: s.late_submission_penalty
                for s in gradebook.assignment_submissions(ASSIGNMENT)}
