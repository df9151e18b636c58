"""The classroom loop on a real exchange, real kernels and the real daemon: release, fetch and
submit as two students, collect, grade, release feedback and fetch it back; a zip an LMS gives
collected and graded; a manual grade added through NbGraderAPI; the Canvas import CSV."""

from __future__ import annotations

import csv
import html
import os
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.exchange.default import (
    ExchangeFetchAssignment,
    ExchangeFetchFeedback,
    ExchangeSubmit,
)
from nbgrader_course import (
    ASSIGNMENT,
    AUTOGRADED_POINTS,
    MAX_SCORE,
    scores,
    solve,
    write_source,
    write_submissions,
)
from traitlets.config import Config

from graders import classroom
from graders.exports import CANVAS_COLUMNS, CANVAS_POINTS_ROW, write_canvas_csv
from graders.grading import GradingOptions, grade_assignment
from graders.nbgrader_env import course_config, sqlite_url

pytestmark = [pytest.mark.docker]
COURSE_ID = "dc101"
SOLVED = {"alice": {"problem1", "problem2"}, "bob": {"problem2"}}


def _as_student(exchange: Path, home: Path, student: str) -> Config:
    """What a student's nbgrader uses: the shared exchange, their own folder and cache."""
    config = Config()
    config.CourseDirectory.course_id = COURSE_ID
    config.CourseDirectory.assignment_id = ASSIGNMENT
    config.CourseDirectory.student_id = student
    config.Exchange.root = str(exchange)
    config.Exchange.assignment_dir = str(home)
    config.Exchange.cache = str(home / ".nbgrader_cache")
    return config


def _student_step(kind, config: Config) -> None:
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory

    kind(coursedir=CourseDirectory(config=config), authenticator=Authenticator(config=config),
         config=config).start()


def _total(db_url: str, student: str) -> float:
    return sum(scores(db_url)[student].values())


@pytest.fixture
def course(tmp_path):
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    write_source(root, f'c = get_config()\nc.CourseDirectory.course_id = "{COURSE_ID}"\n'
                       f'c.Exchange.root = "{exchange}"\n')
    return root, exchange, sqlite_url(root / "gradebook.db")


def test_an_exchange_round_trip_from_release_to_fetched_feedback(course, tmp_path,
                                                                 no_leftovers):
    root, exchange, db_url = course
    outbound = classroom.release_assignment(root, db_url, ASSIGNMENT)
    assert outbound == exchange / COURSE_ID / "outbound" / ASSIGNMENT
    assert sorted(p.name for p in outbound.iterdir()) == ["data.txt", "problem1.ipynb",
                                                          "problem2.ipynb"]
    assert "BEGIN SOLUTION" not in (outbound / "problem1.ipynb").read_text()

    instructors_secret = tmp_path / "instructors-secret.txt"
    instructors_secret.write_text("the instructor's own file")
    for student, notebooks in SOLVED.items():
        home = tmp_path / "home" / student
        config = _as_student(exchange, home, student)
        _student_step(ExchangeFetchAssignment, config)
        solve(home / ASSIGNMENT, notebooks)
        _student_step(ExchangeSubmit, config)
    # A student who can write to the inbound folder puts a link to the instructor's file there.
    (alices,) = (exchange / COURSE_ID / "inbound").glob(f"alice+{ASSIGNMENT}+*")
    os.symlink(instructors_secret, alices / "notes.txt")

    collected = classroom.collect(root, db_url, ASSIGNMENT)
    assert collected.students == ["alice", "bob"]
    assert [entry.split(" ")[0] for entry in collected.left_out["alice"]] == ["notes.txt"]
    assert not (root / "submitted" / "alice" / ASSIGNMENT / "notes.txt").exists()
    assert (root / "submitted" / "bob" / ASSIGNMENT / "timestamp.txt").is_file()

    batch = grade_assignment(root, ASSIGNMENT, GradingOptions(feedback=True))
    assert {r.student: r.status.value for r in batch.results} == {"alice": "graded",
                                                                   "bob": "graded"}
    assert scores(db_url) == {"alice": AUTOGRADED_POINTS,
                              "bob": {"problem1": 0.0, "problem2": 1.0}}

    released = classroom.release_feedback(root, db_url, ASSIGNMENT)
    assert released.students == ["alice", "bob"] and not released.skipped
    for student in SOLVED:
        home = tmp_path / "home" / student
        _student_step(ExchangeFetchFeedback, _as_student(exchange, home, student))
        pages = sorted((home / ASSIGNMENT / "feedback").glob("*/*.html"))
        assert [p.name for p in pages] == ["problem1.html", "problem2.html"], student
        page = html.unescape(re.sub(r"<[^>]+>", "", pages[0].read_text()))  # the text shown
        assert "squares(1)" in page and "squares(3)" not in page, "hidden test handed back"


def test_an_lms_zip_is_collected_and_graded(course, tmp_path, no_leftovers):
    root, _, db_url = course
    write_submissions(root, SOLVED)
    made = shutil.move(root / "submitted", tmp_path / "made")
    download = tmp_path / "submissions.zip"
    with zipfile.ZipFile(download, "w") as archive:  # Canvas's names: name_[LATE_]id_id_file
        for student, notebook, name in (  # alice handed problem2 in again: Canvas numbers it
                ("alice", "problem1", "alice_1001_5001_problem1.ipynb"),
                ("alice", "problem2", "alice_1001_5002_problem2-1.ipynb"),
                ("bob", "problem2", "bob_LATE_1002_5003_problem2.ipynb"),
                ("bob", "problem1", "bob_1002_5004_scratch.ipynb")):
            archive.write(made / student / ASSIGNMENT / f"{notebook}.ipynb", name)

    collected = classroom.collect_zip(root, db_url, ASSIGNMENT, [download])
    assert collected.students == ["alice", "bob"]
    assert any("scratch.ipynb" in warning for warning in collected.warnings), collected.warnings
    assert sorted(p.name for p in (root / "submitted" / "bob" / ASSIGNMENT).iterdir()) == [
        "problem2.ipynb"]

    grade_assignment(root, ASSIGNMENT, GradingOptions(feedback=False))
    assert _total(db_url, "alice") == 3.0 and _total(db_url, "bob") == 1.0


def test_a_manual_grade_adds_to_the_autograded_total_and_reaches_canvas(course, tmp_path,
                                                                        no_leftovers):
    from nbgrader.apps import NbGraderAPI

    root, _, db_url = course
    write_submissions(root, SOLVED)
    # An untouched answer cell scores 0 with nothing to grade by hand: alice writes one.
    problem1 = root / "submitted" / "alice" / ASSIGNMENT / "problem1.ipynb"
    nb = nbformat.read(str(problem1), 4)
    (explain,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "explain"]
    explain.source = "Each square is the sum of the first odd numbers."
    nbformat.write(nb, str(problem1))
    grade_assignment(root, ASSIGNMENT, GradingOptions(feedback=False))
    api = NbGraderAPI(config=course_config(root, db_url))  # what formgrader runs on
    assert api.get_submission(ASSIGNMENT, "alice")["needs_manual_grade"]
    with api.gradebook as gradebook:  # as formgrader's grade handler saves a manual score
        gradebook.find_grade("explain", "problem1", ASSIGNMENT, "alice").manual_score = 2.5
        gradebook.db.commit()
        gradebook.add_student("dave", first_name="Dave", last_name="Null", lms_user_id="1004")
    assert api.get_submission(ASSIGNMENT, "alice")["score"] == 3.0 + 2.5

    rows = list(csv.reader(write_canvas_csv(db_url, tmp_path / "canvas.csv",
                                            {ASSIGNMENT: "777"}).open()))
    assert rows[0] == [*CANVAS_COLUMNS, f"{ASSIGNMENT} (777)"]
    assert rows[1] == [CANVAS_POINTS_ROW, "", "", "", "", f"{MAX_SCORE:g}"]
    by_login = {row[3]: row for row in rows[2:]}
    assert by_login["alice"][-1] == "5.5" and by_login["bob"][-1] == "1"
    assert by_login["dave"][:2] == ["Null, Dave", "1004"] and by_login["dave"][-1] == "", \
        "no submission must leave Canvas's cell blank, not zero"
    assert all(len(row) == len(rows[0]) for row in rows)
