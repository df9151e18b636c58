"""An ordinary nbgrader assignment: two notebooks, a data file and a manually graded answer,
graded by course grade and by stock nbgrader autograde in one run, with the same scores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from graders.grading import GradingOptions, grade_assignment
from graders.release import generate_release

pytestmark = [pytest.mark.docker]
ASSIGNMENT = "ps1"


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


PROBLEM1 = _notebook([
    new_markdown_cell("# Squares", id="intro"),
    _cell("code", "def squares(n):\n    ### BEGIN SOLUTION\n    return [i * i for i in "
                  "range(1, n + 1)]\n    ### END SOLUTION", "squares", solution=True),
    _cell("code", "assert squares(1) == [1]\n### BEGIN HIDDEN TESTS\nassert squares(3) == "
                  "[1, 4, 9]\n### END HIDDEN TESTS", "squares-tests", grade=True, points=2),
    _cell("markdown", "YOUR ANSWER HERE", "explain", solution=True, grade=True, points=3),
])
PROBLEM2 = _notebook([
    _cell("code", "def total(path):\n    ### BEGIN SOLUTION\n    return sum(int(x) for x in "
                  "open(path).read().split())\n    ### END SOLUTION", "total", solution=True),
    _cell("code", "assert total('data.txt') == 6", "total-tests", grade=True, points=1),
])


def _course(root: Path) -> None:
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(PROBLEM1, str(source / "problem1.ipynb"))
    nbformat.write(PROBLEM2, str(source / "problem2.ipynb"))
    (source / "data.txt").write_text("1 2 3\n")
    released = root / "released"
    generate_release(root, released, assignments=[ASSIGNMENT])
    solved = {"alice": {"problem1", "problem2"}, "bob": {"problem2"}, "carol": set()}
    for student, notebooks in solved.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, original in (("problem1", PROBLEM1), ("problem2", PROBLEM2)):
            nb = nbformat.read(str(released / ASSIGNMENT / f"{name}.ipynb"), 4)
            if name in notebooks:
                for cell, source_cell in zip(nb.cells, original.cells, strict=True):
                    if cell.cell_type == "code" and cell.metadata["nbgrader"]["solution"]:
                        cell.source = source_cell.source
            nbformat.write(nb, str(folder / f"{name}.ipynb"))
        shutil.copy(released / ASSIGNMENT / "data.txt", folder / "data.txt")
    shutil.rmtree(released)


def _scores(root: Path) -> dict[str, dict[str, float]]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        return {s.student.id: {nb.notebook.name: nb.score for nb in s.notebooks}
                for s in gradebook.assignment_submissions(ASSIGNMENT)}


def test_an_nbgrader_assignment_scores_as_under_stock_nbgrader(tmp_path, no_leftovers):
    ours, stock = tmp_path / "ours", tmp_path / "stock"
    _course(ours)
    shutil.copytree(ours, stock)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for step in (["generate_assignment", ASSIGNMENT, "--force"],
                 ["autograde", ASSIGNMENT, "--force"]):
        done = subprocess.run([sys.executable, "-m", "nbgrader", *step], cwd=stock, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    batch = grade_assignment(ours, ASSIGNMENT, GradingOptions(feedback=True))
    assert {r.student: r.status.value for r in batch.results} == dict.fromkeys(
        ("alice", "bob", "carol"), "graded")
    expected = {"alice": {"problem1": 2.0, "problem2": 1.0},
                "bob": {"problem1": 0.0, "problem2": 1.0},
                "carol": {"problem1": 0.0, "problem2": 0.0}}
    assert _scores(stock) == expected
    assert _scores(ours) == expected
    graded = ours / "autograded" / "alice" / ASSIGNMENT
    assert sorted(p.name for p in graded.glob("*.ipynb")) == ["problem1.ipynb", "problem2.ipynb"]
    pages = ours / "feedback" / "alice" / ASSIGNMENT
    assert sorted(p.name for p in pages.glob("*.html")) == ["problem1.html", "problem2.html"]
    assert not (ours / "release").exists(), "course grade wrote release/ unasked"
