"""Grading on a pool of workers: same scores as serial, on Dask too, resumable, exportable."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import builders as b
import pytest

from graders.grading import GradingOptions, grade_assignment, grade_assignments
from graders.outcome import Status
from graders.release import generate_release
from graders.report import collect, render

pytestmark = [pytest.mark.docker, pytest.mark.slow]

GRADESCOPE_TEST_FIELDS = {"name", "score", "max_score", "status", "visibility", "output"}


def _class(root: Path, size: int = 6) -> Path:
    """A course folder with a mix of perfect, blank, broken and half-done submissions."""
    b.course_folder(root, b.mini_source())
    generate_release(root, root / "release", assignments=[b.MINI])
    solved, blank = b.solved(root), b.released(root)
    half = b.with_cell_source(solved, "start-solution", b.released(root).cells[5].source)
    kinds = [solved, blank, half, '{"nope": ', solved, half]
    for index in range(size):
        b.submit(root, f"student{index:02d}", kinds[index % len(kinds)])
    return root


def _scores(batch) -> dict[str, tuple[str, float | None]]:
    return {r.student: (r.status.value, r.score) for r in batch.results}


def test_parallel_grading_gives_the_same_scores_as_serial(tmp_path, no_leftovers):
    serial = grade_assignment(_class(tmp_path / "serial"), b.MINI,
                              GradingOptions(workers=1, feedback=False))
    parallel = grade_assignment(_class(tmp_path / "parallel"), b.MINI,
                                GradingOptions(workers=2, feedback=False))
    assert _scores(serial) == _scores(parallel)
    assert {s for s, _ in _scores(serial).values()} == {"graded", "invalid notebook"}
    assert parallel.workers == 2


def test_a_class_handing_in_the_same_notebook_is_graded_at_once_without_interference(
        tmp_path, no_leftovers):
    """Copies of one solution graded side by side, as a real class is (two copies of each of two
    notebooks, all four at once): they build identical images (one id from the build cache),
    prune at the same moment and rename their own images while the others build. Each must
    still score as it would alone."""
    import shutil

    from conftest import ROOT

    notebooks = ("09-cleanup", "18-ports")
    root = tmp_path / "course"
    for notebook in notebooks:
        shutil.copytree(ROOT / "source" / notebook, root / "source" / notebook)
        for copy in range(2):
            b.submit(root, f"copy{copy}", b.solved(root, notebook), notebook)
    batches = grade_assignments(root, list(notebooks),
                                GradingOptions(workers=4, feedback=False, cell_timeout=90))
    for batch in batches:
        assert [(r.status.value, r.score) for r in batch.results] == \
            [("graded", batch.results[0].max_score)] * 2, \
            (batch.assignment, {r.student: b.cell_errors(root, r.student, batch.assignment)
                                for r in batch.results})


def test_dask_local_cluster_grades_with_the_same_scores(tmp_path, no_leftovers):
    distributed = pytest.importorskip("distributed")
    local = grade_assignment(_class(tmp_path / "local", 4), b.MINI,
                             GradingOptions(workers=2, feedback=False))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = grade_assignment(_class(tmp_path / "dask", 4), b.MINI,
                                   GradingOptions(scheduler=cluster.scheduler_address,
                                                  feedback=False))
    assert _scores(on_dask) == _scores(local)
    assert on_dask.workers == 2


def _start_grading(root: Path) -> subprocess.Popen:
    course = Path(sys.executable).parent / "course"
    return subprocess.Popen([str(course), "grade", b.MINI, "--course-dir", str(root),
                             "--workers", "1", "--no-feedback"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _outcomes(root: Path) -> dict[str, float]:
    return {p.stem: p.stat().st_mtime for p in (root / "grading" / b.MINI).glob("*.json")}


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_an_interrupted_run_resumes_without_loss_or_duplication(tmp_path, stop, no_leftovers):
    root = _class(tmp_path / "course", 5)
    slow = b.with_cell_source(b.solved(root), "double-solution",
                              "import time\ntime.sleep(2)\ndef double(x):\n    return 2 * x")
    for index in range(5):
        if index != 3:
            b.submit(root, f"student{index:02d}", slow)
    first = _start_grading(root)
    deadline = time.monotonic() + 120
    while len(_outcomes(root)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(stop)
    output, _ = first.communicate(timeout=60)
    assert first.returncode != 0
    if stop == signal.SIGINT:
        assert "interrupted" in output and "run the same command again" in output.lower()
    done_before = _outcomes(root)
    assert 2 <= len(done_before) < 5
    time.sleep(1)  # let killed workers' kernels notice and exit
    second = _start_grading(root)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    after = _outcomes(root)
    assert set(after) == {f"student{i:02d}" for i in range(5)}
    assert all(after[s] == mtime for s, mtime in done_before.items()), "regraded a finished one"
    with (root / "exports" / f"{b.MINI}-status.csv").open() as handle:
        rows = {r["student_id"]: r["status"] for r in csv.DictReader(handle)}
    assert {s for s, status in rows.items() if status == "already graded"} == set(done_before)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        assert len(gradebook.find_assignment(b.MINI).submissions) == 5


def test_gradescope_results_and_report(tmp_path, no_leftovers):
    root = _class(tmp_path / "course", 3)
    batch = grade_assignment(root, b.MINI, GradingOptions(workers=2))
    files = sorted(batch.gradescope_dir.glob("*/results.json"))
    assert [f.parent.name for f in files] == ["student00", "student01", "student02"]
    perfect = json.loads(files[0].read_text())
    assert perfect["score"] == 3.0 and {"tests", "output", "execution_time"} <= set(perfect)
    for test in perfect["tests"]:
        assert set(test) == GRADESCOPE_TEST_FIELDS
        assert test["visibility"] in {"visible", "hidden", "after_due_date", "after_published"}
    assert {t["visibility"] for t in perfect["tests"]} == {"hidden"}
    blank = json.loads(files[1].read_text())
    assert blank["score"] == 0 and all(t["status"] == "failed" for t in blank["tests"])
    assert "NotImplementedError" in blank["tests"][0]["output"]
    assert "HIDDEN" not in files[1].read_text() and "exec_run" not in files[1].read_text()
    [stats] = collect(root, f"sqlite:///{root / 'gradebook.db'}")
    assert sorted(stats.scores) == [0.0, 1.0, 3.0]
    assert sorted(stats.cells["double-tests"]) == [False, True, True]
    assert sorted(stats.cells["start-tests"]) == [False, False, True]
    page = render([stats])
    assert page.count("data:image/png;base64,") == 2 and "NotImplementedError" in page


@pytest.mark.skipif(not os.environ.get("COURSE_TEST_POSTGRES_URL"),
                    reason="set COURSE_TEST_POSTGRES_URL (make test starts a server)")
def test_a_postgresql_gradebook_works(tmp_path, no_leftovers):
    import sqlalchemy

    url = os.environ["COURSE_TEST_POSTGRES_URL"]
    database = f"course_test_{os.getpid()}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    try:
        db_url = url.rsplit("/", 1)[0] + f"/{database}"
        root = _class(tmp_path / "course", 3)
        batch = grade_assignment(root, b.MINI, GradingOptions(workers=2, db_url=db_url,
                                                             feedback=False))
        assert _scores(batch) == {"student00": ("graded", 3.0), "student01": ("graded", 0.0),
                                  "student02": ("graded", 1.0)}
        again = grade_assignment(root, b.MINI, GradingOptions(db_url=db_url, feedback=False))
        assert {r.status for r in again.results} == {Status.ALREADY_GRADED}
    finally:
        admin.dispose()
        with sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def _worker_folders() -> set[Path]:
    """Grading workers' private folders that hold a mini assignment (the side gradings, which
    may run meanwhile, grade the course's notebooks)."""
    return {folder for folder in Path(tempfile.gettempdir()).glob("docker-course-worker-*")
            if any(folder.glob(f"{b.MINI}-*"))}


def test_a_finished_run_leaves_no_worker_folder_behind(tmp_path, no_leftovers):
    before = _worker_folders()
    grade_assignment(_class(tmp_path / "course", 2), b.MINI,
                     GradingOptions(workers=2, feedback=False))
    assert not _worker_folders() - before
