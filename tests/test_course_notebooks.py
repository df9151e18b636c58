"""Every course notebook, graded for real: the solution earns full marks, the untouched release
earns nothing, each grade cell tells them apart, re-running is safe, nothing is left behind.

Both editions of all notebooks are graded as one run on a pool of warm workers. The solution is
handed in run twice in one kernel (graders.samples.run_twice), as a learner re-running every
cell leaves it: its full marks come from the second pass, and no cell of either pass may write
an error or to stderr. Its fresh, single run is graded beside, on the other engines
(tests/test_other_engine.py).
"""

from __future__ import annotations

import pytest
from conftest import ROOT, daemon_objects

from graders.grading import GradingOptions
from graders.pool import LocalPool, default_workers
from graders.release import source_assignments
from graders.validate import grade_all_editions

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ASSIGNMENTS = source_assignments(ROOT)
#: Generous limits: several notebooks share a machine that others may be loading too, and the
#: solution runs twice.
OPTIONS = GradingOptions(feedback=False, cell_timeout=90, submission_timeout=900)


def _leaked(before: dict, after: dict) -> dict:
    return {kind: after[kind] - before[kind] for kind in after if after[kind] - before[kind]}


def _selected(request) -> list[str]:
    """The assignments the session's tests of this module ask for (all of them, unless -k chose)."""
    asked = {item.callspec.params["assignment"] for item in request.session.items
             if item.module is request.module and "assignment" in getattr(
                 getattr(item, "callspec", None), "params", {})}
    return [assignment for assignment in ASSIGNMENTS if assignment in asked] or ASSIGNMENTS


@pytest.fixture(scope="module")
def graded(client, request, tmp_path_factory):
    """The solution run twice and the untouched edition of every assignment, and what grading
    left behind."""
    before = daemon_objects(client)
    pool = LocalPool(default_workers())
    workdir = tmp_path_factory.mktemp("editions")
    try:
        editions = grade_all_editions(ROOT, _selected(request), workdir, OPTIONS, pool,
                                      rerun=True)
    finally:
        pool.close()
    return {"editions": editions, "leaked": _leaked(before, daemon_objects(client))}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(graded, assignment):
    editions = graded["editions"][assignment]
    assert editions.statuses["solution"] == "graded"
    assert sum(s for s, _ in editions.solution.values()) == \
        sum(top for _, top in editions.solution.values()) > 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_scores_zero(graded, assignment):
    editions = graded["editions"][assignment]
    assert editions.statuses["release"] == "graded"
    assert sum(s for s, _ in editions.release.values()) == 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_grade_cell_discriminates(graded, assignment):
    solution, release = graded["editions"][assignment].solution, \
        graded["editions"][assignment].release
    not_full = [name for name, (score, top) in solution.items() if score != top]
    not_zero = [name for name, (score, _) in release.items() if score != 0]
    assert not not_full, f"grade cells that fail on the solution: {not_full}"
    assert not not_zero, f"grade cells that pass on the unsolved release: {not_zero}"


def test_grading_leaves_nothing_on_the_daemon(graded):
    assert not graded["leaked"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_running_the_solution_twice_in_one_kernel_is_safe(graded, assignment):
    """A learner re-runs cells; the second pass must not trip over the first one's objects."""
    solved = graded["editions"][assignment].solved_notebook
    assert solved is not None and any(c.id.startswith("first-") for c in solved.cells)
    written = [(cell.get("id"), output.get("ename") or output.get("text", "")[:300])
               for cell in solved.cells if cell.cell_type == "code"
               for output in cell.get("outputs", [])
               if output.get("output_type") == "error" or output.get("name") == "stderr"]
    assert not written, f"cells that wrote an error or to stderr: {written}"
