"""Grading one task in a worker: nbgrader's autograde in a private course folder.

A worker process (local or on a Dask node) keeps, per assignment version, a private course
folder with the release and a private gradebook written from the task's bundle, so nbgrader,
the kernel machinery and the assignment are set up once per worker, not once per submission.
It never writes the course's real gradebook: it returns the grades and files, and the
coordinator records them.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import docker
import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
)

from . import settings
from .feedback import generate_feedback
from .nbgrader_env import course_config, sqlite_url, tools_on_path
from .outcome import Outcome, Status
from .preprocessors import ExecuteParameterized, RestoreDeletedCells, SaveJudgedGrades
from .sweep import remove_namespace
from .tasks import CellGrade, GradingResult, GradingTask

EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception)\b.*:")

_prepared: dict[str, Path] = {}
_workdir: Path | None = None


#: What a worker imports before its first task (a fork server imports them once for all).
HEAVY_MODULES = ("graders.worker", "nbclient", "papermill.parameterize", "jupyter_client.manager")


def warm_up(coordinator: int | None = None) -> None:
    """Import the heavy machinery once when a worker process starts, and die with the coordinator.

    A coordinator killed outright must not leave workers grading for nobody: the next run
    regrades their submissions, first sweeping whatever their namespaces left behind.
    """
    for module in HEAVY_MODULES:
        importlib.import_module(module)
    from sqlalchemy.exc import SAWarning

    # nbgrader's gradebook code trips SQLAlchemy 2 autoflush warnings that mean nothing here.
    warnings.filterwarnings("ignore", category=SAWarning)
    if coordinator is not None:
        _die_with(coordinator)


def _die_with(pid: int) -> None:
    """Kill this worker when process ``pid`` ends, however it ends.

    The worker's parent is the pool's fork server, which itself lives as long as any worker
    does, so the parent-death signal alone would keep both alive: a pidfd reports the
    coordinator's end directly. Without pidfds the pool spawns workers as the coordinator's
    own children, and the parent-death signal does it.
    """
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return
    except (AttributeError, OSError):
        _die_with_parent()
        return

    def watch() -> None:
        select.select([handle], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="coordinator-watch", daemon=True).start()


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def grade_task(task: GradingTask) -> GradingResult:
    """Grade one submission; never raises: a failure of the machinery is a result too."""
    started = time.monotonic()
    try:
        result = _grade(task)
    except Exception as error:  # reported as an infrastructure error, never as a zero
        result = GradingResult(_outcome(task, Status.INFRASTRUCTURE,
                                        f"{type(error).__name__}: {error}"[:300]))
    result.outcome.wall_seconds = round(time.monotonic() - started, 2)
    return result


def _outcome(task: GradingTask, status: Status, detail: str = "") -> Outcome:
    return Outcome(student=task.student, assignment=task.bundle.assignment, status=status,
                   detail=detail, namespace=task.namespace, worker=socket.gethostname())


def _private_root() -> Path:
    global _workdir
    if _workdir is None:
        _workdir = Path(tempfile.mkdtemp(prefix="docker-course-worker-"))
        atexit.register(shutil.rmtree, _workdir, ignore_errors=True)
    return _workdir


def _prepare(task: GradingTask) -> Path:
    """The private course folder for this assignment version, written on first use."""
    bundle = task.bundle
    if bundle.key not in _prepared:
        root = _private_root() / bundle.key
        name = f"{bundle.assignment}.ipynb"
        for path, content in ((root / "source" / bundle.assignment / name, bundle.source),
                              (root / "release" / bundle.assignment / name, bundle.release),
                              (root / "gradebook.db", bundle.gradebook)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        _prepared[bundle.key] = root
    return _prepared[bundle.key]


def _grade(task: GradingTask) -> GradingResult:
    assignment, student = task.bundle.assignment, task.student
    root = _prepare(task)
    db_url = sqlite_url(root / "gradebook.db")
    submitted = root / "submitted" / student / assignment
    notebook = submitted / f"{assignment}.ipynb"
    submitted.mkdir(parents=True, exist_ok=True)
    notebook.write_bytes(task.notebook)
    if task.timestamp:
        (submitted / "timestamp.txt").write_text(task.timestamp)
    problem = unreadable(notebook)
    if problem:
        _forget(root, student)
        return GradingResult(_outcome(task, Status.INVALID, problem))
    client = docker.from_env()
    try:
        remove_namespace(client, task.namespace, match_names=True)  # a killed earlier run's
    finally:
        client.close()
    outcome_path = root / "outcomes" / f"{student}.json"
    outcome_path.parent.mkdir(exist_ok=True)
    outcome_path.unlink(missing_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"course-{task.namespace}-"))
    try:
        with tools_on_path():
            api = NbGraderAPI(config=_autograde_config(task, root, db_url, outcome_path, scratch))
            run = api.autograde(assignment, student, force=True, create=True)
        if not outcome_path.exists():
            # Execution never started: nbgrader rejected the notebook while sanitizing it.
            return GradingResult(_outcome(task, Status.INVALID,
                                          "nbgrader could not process the notebook: "
                                          + first_error(run)))
        outcome = Outcome.load(outcome_path)
        outcome.student, outcome.assignment = student, assignment
        outcome.worker = socket.gethostname()
        result = GradingResult(outcome)
        if not run["success"]:
            if outcome.status != Status.INFRASTRUCTURE:
                outcome.detail = first_error(run)
            outcome.status = Status.INFRASTRUCTURE
            return result
        result.grades, result.comments = _read_grades(db_url, assignment, student)
        graded = root / "autograded" / student / assignment / f"{assignment}.ipynb"
        result.autograded = graded.read_bytes()
        if task.feedback:
            folder = generate_feedback(root, db_url, assignment, student)
            page = folder / f"{assignment}.html" if folder else None
            result.feedback_html = page.read_bytes() if page and page.exists() else b""
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _forget(root, student)


def _forget(root: Path, student: str) -> None:
    """Drop the student's private files; the coordinator keeps what matters."""
    for step in ("submitted", "autograded", "feedback"):
        shutil.rmtree(root / step / student, ignore_errors=True)


def _autograde_config(task: GradingTask, root: Path, db_url: str, outcome_path: Path,
                      scratch: Path):
    assignment = task.bundle.assignment
    return course_config(
        root, db_url,
        Autograde={
            "sanitize_preprocessors": [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                       RestoreDeletedCells, OverwriteCells, CheckCellMetadata],
            "autograde_preprocessors": [ExecuteParameterized, IgnorePattern,
                                        ClearMetadataPreprocessor, LimitOutput, SaveJudgedGrades,
                                        AssignLatePenalties, CheckCellMetadata],
        },
        RestoreDeletedCells={"release_notebook": str(
            root / "release" / assignment / f"{assignment}.ipynb")},
        ExecuteParameterized={
            "timeout": task.cell_timeout,
            "submission_timeout": task.submission_timeout,
            "namespace": task.namespace,
            "outcome_file": str(outcome_path),
            "scratch_dir": str(scratch),
            "gatekeeper": task.gatekeeper,
            "limits": dict(task.limits),
            "hidden_paths": list(task.private_paths),
            "judge_source": str(root / "source" / assignment / f"{assignment}.ipynb"),
            "parameters": {
                "NAMESPACE": task.namespace,
                "BUSYBOX_IMAGE": settings.BUSYBOX_IMAGE,
                "REGISTRY_IMAGE": settings.REGISTRY_IMAGE,
                "SCRATCH_DIR": str(scratch),
            },
        },
    )


def _read_grades(db_url: str, assignment: str, student: str):
    with Gradebook(db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        grades = [CellGrade(g.name, g.auto_score, g.needs_manual_grade) for g in notebook.grades]
        comments = {c.name: c.auto_comment for c in notebook.comments}
    return grades, comments


def unreadable(path: Path) -> str:
    """Why the submitted notebook cannot be graded, or "" when it can be read and validated."""
    if not path.exists() or path.stat().st_size == 0:
        return f"no notebook submitted (expected {path.name})"
    try:
        json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return f"not valid JSON ({error})"
    try:
        nbformat.validate(nbformat.read(str(path), as_version=4))
    except Exception as error:  # nbformat raises reader and validation errors alike
        return f"not a valid notebook: {str(error).strip().splitlines()[0][:120]}"
    return ""


def first_error(run: dict) -> str:
    """The most specific error line nbgrader logged: the exception that started the failure."""
    text = f"{run.get('log', '')}\n{run.get('error', '')}"
    for line in text.splitlines():
        stripped = line.strip()
        if EXCEPTION_LINE.match(stripped) and "NbGraderException" not in stripped:
            return stripped[:300]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"
