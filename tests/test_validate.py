"""`course validate` finds each kind of problem and names the cell."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import builders as b
import nbformat
import pytest
from conftest import ROOT

from graders.release import release
from graders.validate import check_grading, validate

DEMO = "02-containers"


@pytest.fixture
def course(tmp_path):
    """A fresh course repository holding 02-containers, with its generated trees."""
    root = tmp_path / "course"
    shutil.copytree(ROOT / "source" / DEMO, root / "source" / DEMO)
    shutil.copy(ROOT / "README.md", root / "README.md")
    release(root)
    return root


def _edit(root: Path, assignment: str, cell_id: str, source: str) -> None:
    path = root / "source" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.id == cell_id:
            cell.source = source
    nbformat.write(nb, str(path))


def test_a_fresh_course_passes_the_fast_checks(course):
    assert validate(course, grading=False) == []


def test_a_stale_release_is_reported(course):
    _edit(course, DEMO, "objectives", "# Changed after the release")
    problems = [str(p) for p in validate(course, grading=False)]
    assert any(f"release/{DEMO}/{DEMO}.ipynb" in p and "stale" in p for p in problems)


def test_a_test_cell_reading_what_only_an_example_defines_is_reported(course):
    """The judge runs the locked cells and the test cells, never an example."""
    path = course / "source" / DEMO / f"{DEMO}.ipynb"
    tests = next(c for c in nbformat.read(str(path), as_version=4).cells if c.id == "create-tests")
    _edit(course, DEMO, "create-tests", tests.source.replace(
        'name = f"{NAMESPACE}-create"', 'name = f"{NAMESPACE}-create"\nprint(COUNT_TO_2000)'))
    problems = [str(p) for p in validate(course, grading=False)]
    assert f"{DEMO}:create-tests: reads 'COUNT_TO_2000', which the judge does not have: define " \
        "it in the setup cell or in the test cell" in problems


def test_a_missing_syllabus_item_is_reported_by_the_command(course):
    path = course / "source" / DEMO / f"{DEMO}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "rm-v-solution":
            cell.metadata["nbgrader"]["grade_id"] = "something-else-solution"
    nbformat.write(nb, str(path))
    course_command = Path(sys.executable).parent / "course"
    done = subprocess.run([str(course_command), "validate", "--no-grading", "--course-dir",
                           str(course)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"{DEMO}:rm-v-solution: no exercise covers syllabus item `rm-v`" in done.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_grading_problems_name_the_cell(tmp_path, no_leftovers):
    root = b.course_folder(tmp_path / "course", b.mini_source())
    _edit(root, b.MINI, "start-tests", "assert True")
    _edit(root, b.MINI, "double-solution",
          "def double(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n    ### END SOLUTION\n"
          "raise RuntimeError('broken example')")
    problems = [str(p) for p in check_grading(root, b.MINI, tmp_path / "work")]
    assert f"{b.MINI}:start-tests: passes on the unsolved release version" in problems
    assert any(p.startswith(f"{b.MINI}:double-solution: the solution writes RuntimeError")
               for p in problems)
    assert any(p.startswith(f"{b.MINI}:double-tests: fails on the solution") for p in problems)
