"""Every course notebook, graded for real: the solution earns full marks, the untouched release
earns nothing, each grade cell tells them apart, re-running is safe, nothing is left behind."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from conftest import ROOT, daemon_objects
from nbclient import NotebookClient
from nbgrader.api import Gradebook

from graders.grading import GradingOptions, grade_assignment
from graders.outcome import Status
from graders.release import generate_release, source_assignments
from graders.samples import SampleMaker

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ASSIGNMENTS = source_assignments(ROOT)


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, client, tmp_path_factory):
    """Grade the solved and the untouched edition of one assignment in a fresh course folder."""
    assignment = request.param
    root = tmp_path_factory.mktemp(assignment)
    shutil.copytree(ROOT / "source" / assignment, root / "source" / assignment)
    generate_release(root, root / "release", assignments=[assignment])
    maker = SampleMaker(
        nbformat.read(str(root / "source" / assignment / f"{assignment}.ipynb"), 4),
        nbformat.read(str(root / "release" / assignment / f"{assignment}.ipynb"), 4))
    for student, nb in (("solution", maker.solved(set(maker.items))),
                        ("release", maker.release)):
        path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, str(path))
    before = daemon_objects(client)
    batch = grade_assignment(root, assignment, GradingOptions(feedback=False))
    after = daemon_objects(client)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        cells = {student: {g.name: (g.score, g.max_score) for g in
                           gb.find_submission_notebook(assignment, assignment, student).grades}
                 for student in ("solution", "release")}
    return {"assignment": assignment, "results": {r.student: r for r in batch.results},
            "cells": cells, "leaked": {k: after[k] - before[k] for k in after
                                       if after[k] - before[k]}}


def test_solution_scores_full_marks(graded):
    result = graded["results"]["solution"]
    assert result.status == Status.GRADED, result.detail
    assert result.score == result.max_score > 0


def test_untouched_release_scores_zero(graded):
    result = graded["results"]["release"]
    assert result.status == Status.GRADED, result.detail
    assert result.score == 0


def test_every_grade_cell_discriminates(graded):
    solution, release = graded["cells"]["solution"], graded["cells"]["release"]
    not_full = [name for name, (score, top) in solution.items() if score != top]
    not_zero = [name for name, (score, _) in release.items() if score != 0]
    assert not not_full, f"grade cells that fail on the solution: {not_full}"
    assert not not_zero, f"grade cells that pass on the unsolved release: {not_zero}"


def test_grading_leaves_nothing_on_the_daemon(graded):
    assert not graded["leaked"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_running_the_solution_twice_in_one_kernel_is_safe(assignment, no_leftovers):
    """A learner re-runs cells; the second pass must not trip over the first one's objects."""
    nb = nbformat.read(str(ROOT / "source" / assignment / f"{assignment}.ipynb"), 4)
    twice = nbformat.v4.new_notebook(metadata=nb.metadata)
    for round_ in ("first", "second"):
        for cell in nb.cells:
            copy = nbformat.from_dict(dict(cell))
            copy["id"] = f"{round_}-{cell.id}"
            twice.cells.append(copy)
    NotebookClient(twice, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "source" / assignment)}}).execute()
    errors = [(c.id, o.get("ename")) for c in twice.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    stderr = [c.id for c in twice.cells if c.cell_type == "code"
              for o in c.outputs if o.get("name") == "stderr"]
    assert not errors and not stderr
