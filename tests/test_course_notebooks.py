"""Every course notebook, graded for real: the solution earns full marks, the untouched release
earns nothing, each grade cell tells them apart, re-running is safe, nothing is left behind.

Both editions of all notebooks are graded as one run on a pool of warm workers, then every
solution runs twice in its own kernel, several at once: the notebooks mostly wait on the daemon,
so one at a time would leave the machine idle. The two passes of the notebooks in ALONE run on
their own.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import pytest
from conftest import ROOT, daemon_objects
from two_passes import run_twice

from graders.grading import GradingOptions
from graders.pool import LocalPool, default_workers
from graders.release import source_assignments
from graders.validate import grade_all_editions

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ASSIGNMENTS = source_assignments(ROOT)
#: Notebooks that prune images. Their two passes run with no gatekeeper, so no build-cache lock
#: (graders/daemon_lock.py): beside the others, an image a 15-layers build was using vanished
#: while 09-cleanup ran. Graded, they run with the rest.
ALONE = ["09-cleanup"]
TOGETHER = [assignment for assignment in ASSIGNMENTS if assignment not in ALONE]
#: Generous cell limit: several notebooks share a machine that others may be loading too.
OPTIONS = GradingOptions(feedback=False, cell_timeout=90)


def _leaked(before: dict, after: dict) -> dict:
    return {kind: after[kind] - before[kind] for kind in after if after[kind] - before[kind]}


@pytest.fixture(scope="module")
def graded(client, tmp_path_factory):
    """The solved and the untouched edition of every assignment, and what grading left behind."""
    before = daemon_objects(client)
    pool = LocalPool(default_workers())
    workdir = tmp_path_factory.mktemp("editions")
    try:
        editions = grade_all_editions(ROOT, ASSIGNMENTS, workdir, OPTIONS, pool)
    finally:
        pool.close()
    return {"editions": editions, "leaked": _leaked(before, daemon_objects(client))}


@pytest.fixture(scope="module")
def two_passes(client, graded):
    """Each solution run twice in one kernel (after grading, which sweeps what is new)."""
    before = daemon_objects(client)
    with concurrent.futures.ProcessPoolExecutor(
            default_workers(), mp_context=multiprocessing.get_context("spawn")) as runs:
        futures = {assignment: runs.submit(run_twice, ROOT, assignment)
                   for assignment in TOGETHER}
        found = {assignment: future.result() for assignment, future in futures.items()}
        for assignment in ALONE:
            found[assignment] = runs.submit(run_twice, ROOT, assignment).result()
    return {"runs": found, "leaked": _leaked(before, daemon_objects(client))}


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
def test_running_the_solution_twice_in_one_kernel_is_safe(two_passes, assignment):
    """A learner re-runs cells; the second pass must not trip over the first one's objects."""
    run = two_passes["runs"][assignment]
    assert not run["errors"] and not run["stderr"]


def test_running_twice_leaves_nothing_on_the_daemon(two_passes):
    assert not two_passes["leaked"]
