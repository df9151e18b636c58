"""Forged verdicts, graded for real: every tampering submission scores what the same notebook
without the tampering scores.

Each family of tests/tampering.py goes into the untouched release (which scores nothing) of
02-containers and into a half-solved edition (every other exercise solved), and two of them into
the release of 17-volumes, graded in one run beside the honest editions. Grade cells run in a
judge outside the kernel, so none of the kernel's tricks reaches a verdict. Every edition, and
the source it is graded against, is the notebook without its worked examples
(builders.exercises_only): a forgery aims at verdicts, and the examples' container starts would
cost each of the 23 copies seconds.
"""

from __future__ import annotations

import json
import shutil

import builders as b
import nbformat
import pytest
from conftest import ROOT
from tampering import FAMILIES, tampered

from graders import confinement
from graders.grading import GradingOptions, grade_assignments
from graders.pool import LocalPool, default_workers

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NOTEBOOKS = ["02-containers", "17-volumes"]
#: Which editions are tampered with, and how, per notebook: every family on 02, and on 17 the
#: cell-runner wrapper (five lines that once scored its untouched release 12/12) and the fake
#: Docker client (which must not turn honest work into a forgery). A grading costs seconds.
EDITIONS = {"02-containers": {"release": sorted(FAMILIES), "half": sorted(FAMILIES)},
            "17-volumes": {"release": ["cell-runner", "fake-docker"]}}
CASES = [(assignment, edition, family) for assignment, editions in EDITIONS.items()
         for edition, families in editions.items() for family in families]


def half_solved(assignment: str) -> nbformat.NotebookNode:
    """The release with every other exercise's solution put back."""
    release = nbformat.read(str(ROOT / "release" / assignment / f"{assignment}.ipynb"), 4)
    source = nbformat.read(str(ROOT / "source" / assignment / f"{assignment}.ipynb"), 4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    for number, cell in enumerate(c for c in release.cells
                                  if c.metadata.get("nbgrader", {}).get("solution")):
        if number % 2 == 0:
            cell.source = solutions[cell.metadata["nbgrader"]["grade_id"]]
    return release


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("tampering")
    for assignment in NOTEBOOKS:
        shutil.copytree(ROOT / "source" / assignment, course / "source" / assignment)
        source = course / "source" / assignment / f"{assignment}.ipynb"
        b.write(b.exercises_only(nbformat.read(str(source), 4)), source)
        release = nbformat.read(str(ROOT / "release" / assignment / f"{assignment}.ipynb"), 4)
        editions = {"release": b.exercises_only(release),
                    "half": b.exercises_only(half_solved(assignment))}
        for edition, notebook in list(editions.items()):
            for family in EDITIONS[assignment].get(edition, ()):
                editions[f"{edition}+{family}"] = tampered(notebook, family)
        for student, notebook in editions.items():
            target = course / "submitted" / student / assignment / f"{assignment}.ipynb"
            target.parent.mkdir(parents=True)
            target.write_text(json.dumps(notebook))
    pool = LocalPool(default_workers())
    try:
        batches = grade_assignments(course, NOTEBOOKS, GradingOptions(feedback=False), pool=pool)
    finally:
        pool.close()
    return {batch.assignment: {r.student: r for r in batch.results} for batch in batches}


@pytest.mark.parametrize("assignment", NOTEBOOKS)
def test_honest_editions_score_as_expected(graded, assignment):
    results = graded[assignment]
    assert results["release"].score == 0
    assert 0 < results["half"].score < results["half"].max_score


@pytest.mark.parametrize(("assignment", "edition", "family"), CASES)
def test_tampering_scores_what_the_untampered_notebook_scores(graded, assignment, family,
                                                               edition):
    if family == "attack-judge" and not confinement.available():
        pytest.skip("without root the judge runs unconfined, as the grading user: nothing "
                    "keeps a process of that user out of it")
    results = graded[assignment]
    forged, honest = results[f"{edition}+{family}"], results[edition]
    assert forged.status.value in ("graded", "timed out", "kernel died"), forged.detail
    assert forged.score == honest.score, (
        f"{family} on the {edition} edition of {assignment} scored {forged.score}, "
        f"the untampered notebook {honest.score}: {forged.detail}")
