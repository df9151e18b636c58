"""A file the learner edits and hands in beside the notebook (``learner_files`` in
graders/course.yml) is graded as handed in: nbgrader's autograde copies the rest of the
assignment folder from source/ over a submission, but not that file.

14-dockerfile's `context-folder` exercise builds the learner's own `context/Dockerfile`. The
notebook's solutions are the same in every case here; only the Dockerfile beside it differs.
The notebook is graded with that exercise and one other (`from-label`, which must keep its
points whatever the Dockerfile), without the worked examples: the twelve exercises with their
examples cost a minute of builds and say nothing more about which Dockerfile is graded.
"""

from __future__ import annotations

import shutil

import builders as b
import nbformat
import pytest
from conftest import ROOT

from graders import manifest
from graders.grading import GradingOptions, grade_assignments
from graders.pool import LocalPool, default_workers
from graders.release import released_text, solved_text

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ASSIGNMENT, LEARNER_FILE, TESTS = "14-dockerfile", "context/Dockerfile", "context-folder-tests"
EXERCISES = {"context-folder", "from-label"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The solved notebook handed in with the solved, the released, or no Dockerfile."""
    course = tmp_path_factory.mktemp("learner-files")
    shutil.copytree(ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    notebook = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    b.write(b.exercises_only(nbformat.read(str(notebook), 4), EXERCISES), notebook)
    source = (ROOT / "source" / ASSIGNMENT / LEARNER_FILE).read_text()
    for student, dockerfile in (("solved", solved_text(source)),
                                ("released", released_text(source)), ("missing", None)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder)
        if dockerfile is not None:
            (folder / LEARNER_FILE).parent.mkdir()
            (folder / LEARNER_FILE).write_text(dockerfile)
    pool = LocalPool(default_workers())
    try:
        [batch] = grade_assignments(course, [ASSIGNMENT], GradingOptions(feedback=False),
                                    pool=pool)
    finally:
        pool.close()
    return {outcome.student: outcome for outcome in batch.results}


def test_the_manifest_names_the_learner_file():
    assert LEARNER_FILE in manifest.learner_files(ASSIGNMENT)


def test_the_solved_dockerfile_earns_the_exercise(graded):
    outcome = graded["solved"]
    assert outcome.status.value == "graded", outcome.detail
    assert set(outcome.verdicts) == {f"{exercise}-tests" for exercise in EXERCISES}
    assert outcome.verdicts[TESTS]["score"] == outcome.verdicts[TESTS]["max_score"] > 0
    assert outcome.score == outcome.max_score


@pytest.mark.parametrize("student", ["released", "missing"])
def test_the_dockerfile_handed_in_is_the_one_graded(graded, student):
    """Were the source's (solved) Dockerfile copied over the submission, these would pass."""
    outcome = graded[student]
    assert outcome.status.value == "graded", outcome.detail
    assert outcome.verdicts[TESTS]["score"] == 0, outcome.verdicts[TESTS]
    others = {name: v for name, v in outcome.verdicts.items() if name != TESTS}
    assert others and all(v["score"] == v["max_score"] for v in others.values()), others
