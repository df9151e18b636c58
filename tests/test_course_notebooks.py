"""Every course notebook, graded for real: the solution earns full marks, the untouched release
earns nothing, each grade cell tells them apart, re-running is safe, nothing is left behind."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT, daemon_objects
from nbclient import NotebookClient

from graders.pool import LocalPool, default_workers
from graders.release import source_assignments
from graders.validate import grade_editions

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ASSIGNMENTS = source_assignments(ROOT)


@pytest.fixture(scope="module")
def pool():
    """One pool of warm workers for every notebook, as `course validate` uses."""
    workers = LocalPool(default_workers())
    yield workers
    workers.close()


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, client, pool, tmp_path_factory):
    """Grade the solved and the untouched edition of one assignment in a fresh course folder."""
    before = daemon_objects(client)
    editions = grade_editions(ROOT, request.param, tmp_path_factory.mktemp("editions"),
                              pool=pool)
    after = daemon_objects(client)
    return {"editions": editions,
            "leaked": {k: after[k] - before[k] for k in after if after[k] - before[k]}}


def test_solution_scores_full_marks(graded):
    editions = graded["editions"]
    assert editions.statuses["solution"] == "graded"
    assert sum(s for s, _ in editions.solution.values()) == \
        sum(top for _, top in editions.solution.values()) > 0


def test_untouched_release_scores_zero(graded):
    editions = graded["editions"]
    assert editions.statuses["release"] == "graded"
    assert sum(s for s, _ in editions.release.values()) == 0


def test_every_grade_cell_discriminates(graded):
    solution, release = graded["editions"].solution, graded["editions"].release
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
