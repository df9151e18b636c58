"""The main job, run as the README runs it: every sample gets its expected score and status."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, daemon_objects

from graders.demo import MARKER, prepare_work_folder
from graders.errors import GradingError
from graders.settings import DEMO_ASSIGNMENT

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_run(client, tmp_path_factory):
    work = tmp_path_factory.mktemp("demo") / "work"
    before = daemon_objects(client)
    course = Path(sys.executable).parent / "course"
    done = subprocess.run([str(course), "demo", "--work-dir", str(work)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    after = daemon_objects(client)
    return {"work": work, "done": done,
            "leaked": {k: after[k] - before[k] for k in after if after[k] - before[k]}}


def test_demo_succeeds_and_prints_a_table(demo_run):
    done = demo_run["done"]
    assert done.returncode == 0, done.stdout + done.stderr
    for student in ("perfect", "partial", "untouched", "hangs", "not-json"):
        assert student in done.stdout
    assert "grades.csv" in done.stdout and "feedback" in done.stdout


def test_each_sample_gets_its_expected_score_and_status(demo_run):
    expected = json.loads((ROOT / "examples/submissions/expected.json").read_text())
    status_csv = demo_run["work"] / "exports" / f"{DEMO_ASSIGNMENT}-status.csv"
    with status_csv.open() as handle:
        got = {row["student_id"]: {"score": float(row["score"]), "status": row["status"]}
               for row in csv.DictReader(handle)}
    assert got == expected[DEMO_ASSIGNMENT]


def test_grades_csv_has_nbgrader_columns_and_every_student(demo_run):
    with (demo_run["work"] / "exports" / "grades.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames[:4] == ["assignment", "duedate", "timestamp", "student_id"]
    assert {r["student_id"] for r in rows} >= {"perfect", "untouched", "not-json"}


def _hidden_lines() -> set[str]:
    """Distinctive lines found only in the demo assignment's hidden tests."""
    source = (ROOT / "source" / DEMO_ASSIGNMENT / f"{DEMO_ASSIGNMENT}.ipynb").read_text()
    hidden_lines, visible_lines, hidden = set(), set(), False
    for cell in json.loads(source)["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                hidden = True
            elif "END HIDDEN TESTS" in line:
                hidden = False
            elif len(line.strip()) > 25:
                (hidden_lines if hidden else visible_lines).add(line.strip())
    return {h for h in hidden_lines if not any(h in v for v in visible_lines)}


def test_feedback_shows_no_hidden_test_code_even_in_tracebacks(demo_run):
    pages = list((demo_run["work"] / "feedback").rglob("*.html"))
    assert {p.parent.parent.name for p in pages} >= {"perfect", "partial", "untouched"}
    hidden = _hidden_lines()
    assert hidden
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{page}: hidden test code shows: {leaked[:3]}"


def test_demo_leaves_nothing_on_the_daemon(demo_run):
    assert not demo_run["leaked"]


def test_demo_refuses_to_clear_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(GradingError):
        prepare_work_folder(ROOT, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / MARKER).exists()
