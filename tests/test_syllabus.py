"""Every syllabus item of a written notebook has a graded exercise whose solution makes its call."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT

from graders import manifest
from graders.release import source_assignments

ASSIGNMENTS = source_assignments(ROOT)


def _cells(assignment):
    nb = nbformat.read(str(ROOT / "source" / assignment / f"{assignment}.ipynb"), 4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if "nbgrader" in c.metadata}


def _exercise_for(cells, item_id):
    """The solution and test cells of the exercise that covers ``item_id``.

    That is `<item>-solution` / `<item>-tests`, or an `<x>-solution` cell listing the item in
    its `docker_course.items` metadata, with its `<x>-tests`.
    """
    for grade_id, cell in cells.items():
        covers = cell.metadata.get("docker_course", {}).get("items", [])
        if grade_id == f"{item_id}-solution" or (grade_id.endswith("-solution")
                                                 and item_id in covers):
            return cell, cells.get(grade_id.removesuffix("-solution") + "-tests")
    return None, None


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_item_has_a_graded_exercise_that_makes_its_call(assignment):
    cells = _cells(assignment)
    problems = []
    for item in manifest.entry(assignment).items:
        solution, tests = _exercise_for(cells, item.id)
        if solution is None or not solution.metadata["nbgrader"].get("solution"):
            problems.append(f"{item.id}: no solution cell `{item.id}-solution` (or one listing "
                            "it in docker_course.items)")
        elif not item.solution_uses:
            problems.append(f"{item.id}: course.yml gives no `solution_uses` for it")
        elif not any(use in solution.source for use in item.solution_uses):
            problems.append(f"{item.id}: the solution makes none of {list(item.solution_uses)}")
        if tests is None or not tests.metadata["nbgrader"].get("points"):
            problems.append(f"{item.id}: its exercise has no grade cell `<x>-tests` with points")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_notebook_has_at_least_five_exercises_and_ten_points(assignment):
    grades = [c.metadata["nbgrader"] for c in _cells(assignment).values()
              if c.metadata["nbgrader"].get("grade")]
    assert len(grades) >= 5 and sum(g["points"] for g in grades) >= 10


def test_manifest_lists_every_item_once_per_course():
    ids = [(nb.id, item.id) for nb in manifest.load() for item in nb.items]
    assert len(ids) == len(set(ids))
