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

from graders.release import release, source_assignments
from graders.validate import (
    check_grading,
    check_messages_hide_solutions,
    check_support_files,
    validate,
)

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



def _replace_in(root: Path, cell_id: str, old: str, new: str) -> None:
    path = root / "source" / DEMO / f"{DEMO}.ipynb"
    tests = next(c for c in nbformat.read(str(path), as_version=4).cells if c.id == cell_id)
    assert old in tests.source
    _edit(root, DEMO, cell_id, tests.source.replace(old, new))


def test_a_message_quoting_a_solution_line_is_reported(course):
    """Quotes and spacing differ from the solution's line: the message still hands it out."""
    _replace_in(course, "create-tests", "(not containers.run) and do not call start().",
                "(not containers.run): client.containers.create(image,  ['echo', 'ready'], "
                "name=name, labels=labels)")
    problems = [str(p) for p in validate(course, grading=False)]
    assert any(p.startswith(f"{DEMO}:create-tests: the message ") and "quotes the solution: "
               "\"client.containers.create(image, ['echo', 'ready'], name=name, labels=labels)\""
               in p for p in problems), problems


def test_a_message_quoting_a_keyword_argument_of_the_solution_is_reported(course):
    """In an f-string, as here, the message is its literal parts."""
    _replace_in(course, "run-tests", "set MESSAGE.", "pass environment={{'MESSAGE': message}}.")
    problems = [str(p) for p in check_messages_hide_solutions(course, DEMO)]
    assert len(problems) == 1 and problems[0].startswith(f"{DEMO}:run-tests: the message "), \
        problems
    assert problems[0].endswith("quotes the solution: \"environment={'MESSAGE': message}\"")


def test_the_course_messages_name_options_without_handing_out_the_solution():
    """Every notebook's messages may name a method or an option, never quote the answer."""
    problems = [str(p) for assignment in source_assignments(ROOT)
                for p in check_messages_hide_solutions(ROOT, assignment)]
    assert problems == []


@pytest.mark.docker
@pytest.mark.slow
def test_only_learner_files_may_hold_a_solution_and_they_must(tmp_path):
    """nbgrader releases an assignment's other files as they are: a solution in one would be
    handed out, and a learner file with no solution would be handed out solved."""
    assignment = "14-dockerfile"
    assert check_support_files(ROOT, assignment) == []
    folder = tmp_path / "source" / assignment
    shutil.copytree(ROOT / "source" / assignment, folder)
    dockerfile = folder / "context" / "Dockerfile"
    (folder / "context" / "notes.txt").write_text(dockerfile.read_text())
    dockerfile.write_text("ARG BASE_IMAGE\nFROM $BASE_IMAGE\n")
    assert [(p.cell, p.message.split(":")[0]) for p in check_support_files(tmp_path, assignment)] \
        == [("context/Dockerfile", "a learner file without solution markers"),
            ("context/notes.txt", "holds solution markers but is not a learner file")]


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
