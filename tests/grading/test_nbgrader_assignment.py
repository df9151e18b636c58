"""An ordinary nbgrader assignment: two notebooks, a data file, a manually graded answer and a
late-penalty plugin set in nbgrader_config.py, graded by course grade and by stock nbgrader
autograde in one run, with the same scores and penalties."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrader_course import ASSIGNMENT, penalties, scores, write_source, write_submissions

from graders.grading import GradingOptions, grade_assignment
from graders.nbgrader_env import sqlite_url, stamp_new_gradebook

pytestmark = [pytest.mark.docker]
DUE = datetime.datetime(2026, 1, 1, 12, 0)
#: When each student handed in (carol's submission carries no time stamp).
HANDED_IN = {"alice": "2026-01-01 11:00:00 UTC", "bob": "2026-01-02 12:00:00 UTC"}
EXPECTED = {"alice": {"problem1": 2.0, "problem2": 1.0},
            "bob": {"problem1": 0.0, "problem2": 1.0},
            "carol": {"problem1": 0.0, "problem2": 0.0}}
LATE = {"alice": 0.0, "bob": 1.0, "carol": 0.0}  # "zero": bob's late point is taken off


def _course(root: Path) -> None:
    write_source(root, 'c = get_config()\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    write_submissions(root, {"alice": {"problem1", "problem2"}, "bob": {"problem2"},
                             "carol": set()})
    for student, stamp in HANDED_IN.items():
        (root / "submitted" / student / ASSIGNMENT / "timestamp.txt").write_text(stamp)
    db_url = sqlite_url(root / "gradebook.db")
    stamp_new_gradebook(db_url)
    with Gradebook(db_url) as gradebook:  # as `nbgrader db assignment add ps1 --duedate` does
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate=DUE)


def test_an_nbgrader_assignment_scores_as_under_stock_nbgrader(tmp_path, no_leftovers):
    ours, stock = tmp_path / "ours", tmp_path / "stock"
    _course(ours)
    shutil.copytree(ours, stock)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for step in (["generate_assignment", ASSIGNMENT, "--force"],
                 ["autograde", ASSIGNMENT, "--force"]):
        done = subprocess.run([sys.executable, "-m", "nbgrader", *step], cwd=stock, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    batch = grade_assignment(ours, ASSIGNMENT, GradingOptions(feedback=True))
    assert {r.student: r.status.value for r in batch.results} == dict.fromkeys(
        ("alice", "bob", "carol"), "graded"), [(r.student, r.detail) for r in batch.results]
    for root in (stock, ours):
        assert scores(sqlite_url(root / "gradebook.db")) == EXPECTED, root.name
        assert penalties(sqlite_url(root / "gradebook.db")) == LATE, root.name
    graded = ours / "autograded" / "alice" / ASSIGNMENT
    assert sorted(p.name for p in graded.glob("*.ipynb")) == ["problem1.ipynb", "problem2.ipynb"]
    pages = ours / "feedback" / "alice" / ASSIGNMENT
    assert sorted(p.name for p in pages.glob("*.html")) == ["problem1.html", "problem2.html"]
    assert not (ours / "release").exists(), "course grade wrote release/ unasked"


def test_an_nbgrader_assignment_scores_the_same_on_a_dask_cluster(tmp_path, no_leftovers):
    from distributed import LocalCluster

    _course(tmp_path)
    # Two threads in one worker process: its gradings must not break each other.
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address=None) as cluster:
        batch = grade_assignment(tmp_path, ASSIGNMENT, GradingOptions(
            feedback=False, scheduler=cluster.scheduler_address))
    assert batch.workers == 1, "not graded on the cluster"
    assert {r.student: r.status.value for r in batch.results} == dict.fromkeys(
        ("alice", "bob", "carol"), "graded"), [(r.student, r.detail) for r in batch.results]
    assert scores(sqlite_url(tmp_path / "gradebook.db")) == EXPECTED
    assert penalties(sqlite_url(tmp_path / "gradebook.db")) == LATE
