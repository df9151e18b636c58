"""Grading one task in a worker: nbgrader's autograde in a private course folder.

A worker process (local or on a Dask node) keeps, per assignment version, a private course
folder with the release and a private gradebook written from the task's bundle, so nbgrader,
the kernel machinery and the assignment are set up once per worker, not once per submission.
It never writes the course's real gradebook: it returns the grades and files, and the
coordinator records them.
"""

from __future__ import annotations

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
from .folders import write_folder
from .nbgrader_env import course_config, sqlite_url, tools_on_path
from .outcome import Outcome, Status
from .preprocessors import ExecuteParameterized, RestoreDeletedCells, SaveJudgedGrades
from .scratch import process_folder
from .sweep import remove_namespace
from .tasks import CellGrade, GradingResult, GradingTask

EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception)\b.*:")

_prepared: dict[str, Path] = {}
_workdir: Path | None = None
#: nbgrader's autograde sets and deletes NBGRADER_EXECUTION in the process environment (and
#: tools_on_path changes PATH), so two gradings on two threads of one process break each other
#: (a KeyError when the second deletes what the first removed): a Dask worker with several
#: threads grades its tasks one at a time. Parallelism comes from processes (--nworkers).
_ONE_AT_A_TIME = threading.Lock()


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
    with _ONE_AT_A_TIME:
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
        _workdir = process_folder("docker-course-worker-")
    return _workdir


def _prepare(task: GradingTask) -> Path:
    """The private course folder for this assignment version, written on first use."""
    bundle = task.bundle
    if bundle.key not in _prepared:
        root = _private_root() / bundle.key
        write_folder(root / "source" / bundle.assignment, bundle.source)
        write_folder(root / "release" / bundle.assignment, bundle.release)
        (root / "gradebook.db").write_bytes(bundle.gradebook)
        write_folder(root, bundle.config)
        _prepared[bundle.key] = root
    return _prepared[bundle.key]


def _grade(task: GradingTask) -> GradingResult:
    assignment, student = task.bundle.assignment, task.student
    root = _prepare(task)
    db_url = sqlite_url(root / "gradebook.db")
    submitted = root / "submitted" / student / assignment
    _forget(root, student)
    submitted.mkdir(parents=True)
    write_folder(submitted, task.files)
    if task.timestamp:
        (submitted / "timestamp.txt").write_text(task.timestamp)
    notebooks = task.bundle.notebooks
    problems = {name: unreadable(submitted / f"{name}.ipynb") for name in notebooks}
    problems = {name: problem for name, problem in problems.items() if problem}
    for name in problems:  # graded as not handed in: nothing of it runs, it scores nothing
        (submitted / f"{name}.ipynb").unlink(missing_ok=True)
    if len(problems) == len(notebooks):
        _forget(root, student)
        return GradingResult(_outcome(task, Status.INVALID, _problems(problems, notebooks)))
    client = docker.from_env()
    try:
        remove_namespace(client, task.namespace, match_names=True)  # a killed earlier run's
    finally:
        client.close()
    outcomes = root / "outcomes" / student
    shutil.rmtree(outcomes, ignore_errors=True)
    outcomes.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"course-{task.namespace}-"))
    try:
        with tools_on_path():
            api = NbGraderAPI(config=_autograde_config(task, root, db_url, outcomes, scratch))
            run = api.autograde(assignment, student, force=True, create=True)
        executed = [name for name in notebooks if (outcomes / f"{name}.json").exists()]
        if not executed:
            # Execution never started: nbgrader rejected the notebooks while sanitizing them.
            return GradingResult(_outcome(task, Status.INVALID,
                                          "nbgrader could not process the notebook: "
                                          + first_error(run)))
        outcome = merged_outcome({name: Outcome.load(outcomes / f"{name}.json")
                                  for name in executed}, len(notebooks) > 1)
        outcome.student, outcome.assignment = student, assignment
        outcome.namespace, outcome.worker = task.namespace, socket.gethostname()
        notes = [note for note in (_problems(problems, notebooks), _left_out(task)) if note]
        outcome.detail = "; ".join(filter(None, [outcome.detail, *notes]))
        result = GradingResult(outcome)
        if not run["success"]:
            if outcome.status != Status.INFRASTRUCTURE:
                outcome.detail = first_error(run)
            outcome.status = Status.INFRASTRUCTURE
            return result
        result.grades, result.comments, result.penalties = _read_grades(db_url, assignment,
                                                                        student)
        graded = root / "autograded" / student / assignment
        result.autograded = {path.name: path.read_bytes()
                             for path in sorted(graded.glob("*.ipynb"))}
        if task.feedback:
            folder = generate_feedback(root, db_url, assignment, student)
            pages = sorted(folder.glob("*.html")) if folder else []
            result.feedback_html = {page.name: page.read_bytes() for page in pages}
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _forget(root, student)


#: Which status a submission of several notebooks ends with: the worst of its notebooks'.
_SEVERITY = (Status.GRADED, Status.TIMED_OUT, Status.KERNEL_DIED, Status.INFRASTRUCTURE)


def merged_outcome(by_notebook: dict[str, Outcome], several: bool) -> Outcome:
    """One Outcome for a submission from each executed notebook's: times and counts added, the
    worst status kept, and, when there are several notebooks, each detail, restored cell and
    verdict named after its notebook."""
    def named(notebook: str, text: str) -> str:
        return f"{notebook}: {text}" if several else text

    merged = Outcome()
    for notebook, outcome in by_notebook.items():
        if _SEVERITY.index(outcome.status) > _SEVERITY.index(merged.status):
            merged.status = outcome.status
        if outcome.detail:
            merged.detail = "; ".join(filter(None, [merged.detail,
                                                    named(notebook, outcome.detail)]))
        merged.seconds = round(merged.seconds + outcome.seconds, 2)
        merged.swept += outcome.swept
        merged.sweep_failures += outcome.sweep_failures
        merged.refused += outcome.refused
        merged.restored_cells += [named(notebook, cell) for cell in outcome.restored_cells]
        merged.verdicts.update({(f"{notebook}/{name}" if several else name): verdict
                                for name, verdict in outcome.verdicts.items()})
    merged.refused = merged.refused[:20]
    return merged


def _problems(problems: dict[str, str], notebooks: list[str]) -> str:
    if len(notebooks) == 1:
        return next(iter(problems.values()), "")
    return "; ".join(f"{name}.ipynb scores nothing: {problem}"
                     for name, problem in problems.items())


def _left_out(task: GradingTask) -> str:
    return f"not graded: {', '.join(task.left_out)}" if task.left_out else ""


def _forget(root: Path, student: str) -> None:
    """Drop the student's private files; the coordinator keeps what matters."""
    for step in ("submitted", "autograded", "feedback"):
        shutil.rmtree(root / step / student, ignore_errors=True)


def _autograde_config(task: GradingTask, root: Path, db_url: str, outcomes: Path,
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
        RestoreDeletedCells={"release_folder": str(root / "release" / assignment)},
        ExecuteParameterized={
            "timeout": task.cell_timeout,
            "submission_timeout": task.submission_timeout,
            "namespace": task.namespace,
            "outcome_folder": str(outcomes),
            "scratch_dir": str(scratch),
            "gatekeeper": task.gatekeeper,
            "limits": dict(task.limits),
            "hidden_paths": list(task.private_paths),
            "judge_folder": str(root / "source" / assignment),
            "parameters": {
                "NAMESPACE": task.namespace,
                "BUSYBOX_IMAGE": settings.BUSYBOX_IMAGE,
                "REGISTRY_IMAGE": settings.REGISTRY_IMAGE,
                "SCRATCH_DIR": str(scratch),
            },
        },
    )


def _read_grades(db_url: str, assignment: str, student: str):
    grades, comments, penalties = [], {}, {}
    with Gradebook(db_url) as gradebook:
        for notebook in gradebook.find_submission(assignment, student).notebooks:
            name = notebook.notebook.name
            grades += [CellGrade(name, g.name, g.auto_score, g.needs_manual_grade)
                       for g in notebook.grades]
            comments.update({(name, c.name): c.auto_comment for c in notebook.comments})
            penalties[name] = notebook.late_submission_penalty
    return grades, comments, penalties


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
