"""Every course notebook, graded for real: the solution earns full marks, the untouched release
earns nothing, each grade cell tells them apart, re-running is safe, nothing is left behind.

Both editions of all notebooks are graded as one run on a pool of warm workers, on a side daemon
of the main daemon's own engine and image store, in the background while the session's other
tests run (tests/side_gradings.py); where no side daemon can run (not root, not Linux), on the
main daemon, when these tests come. The solution is handed in run twice in one kernel
(graders.samples.run_twice), as a learner re-running every cell leaves it: its full marks come
from the second pass, and no cell of either pass may write an error or to stderr. Its fresh,
single run is graded beside, on the other engines (tests/test_other_engine.py).
"""

from __future__ import annotations

import pytest
import side_gradings
from conftest import ROOT

from graders.release import source_assignments

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ASSIGNMENTS = source_assignments(ROOT)


@pytest.fixture(scope="module")
def graded(client, request, tmp_path_factory):
    """Both editions of every assignment, graded (the solution run twice in one kernel), and
    what grading left behind on its daemon."""
    run = side_gradings.run_of("main-engine")
    run.ready.wait()
    side_gradings.say_new_lines(request, run)
    try:
        if run.skip_reason:
            side_gradings.say(request, f"engines: grading on the main daemon: {run.skip_reason}")
            return side_gradings.grade(client, "main-engine", run.assignments,
                                       tmp_path_factory.mktemp("editions"))
        run.done.wait()
        side_gradings.say_new_lines(request, run)
        assert run.found is not None, run.error
        return {"assignments": run.found, "leaked": run.leaked}
    finally:
        run.close()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(graded, assignment):
    solution = graded["assignments"][assignment]["solution"]
    assert graded["assignments"][assignment]["statuses"]["solution"] == "graded"
    assert sum(s for s, _ in solution.values()) == sum(top for _, top in solution.values()) > 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_scores_zero(graded, assignment):
    assert graded["assignments"][assignment]["statuses"]["release"] == "graded"
    assert sum(s for s, _ in graded["assignments"][assignment]["release"].values()) == 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_grade_cell_discriminates(graded, assignment):
    solution, release = (graded["assignments"][assignment][edition]
                         for edition in ("solution", "release"))
    not_full = [name for name, (score, top) in solution.items() if score != top]
    not_zero = [name for name, (score, _) in release.items() if score != 0]
    assert not not_full, f"grade cells that fail on the solution: {not_full}"
    assert not not_zero, f"grade cells that pass on the unsolved release: {not_zero}"


def test_grading_leaves_nothing_on_the_daemon(graded):
    assert not graded["leaked"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_running_the_solution_twice_in_one_kernel_is_safe(graded, assignment):
    """A learner re-runs cells; the second pass must not trip over the first one's objects."""
    assert graded["assignments"][assignment]["first_pass"]
    written = graded["assignments"][assignment]["written"]
    assert not written, f"cells that wrote an error or to stderr: {written}"
