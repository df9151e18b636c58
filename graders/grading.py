"""Autograding the submissions of one assignment: the coordinator of a grading run.

The coordinator finds the submissions still to grade, sends each as a task to a pool of
long-lived workers (local processes or a Dask cluster), and records every result as it arrives,
as the only writer of the gradebook. Every submission ends with exactly one status; a run that
is interrupted resumes with the same command, grading only what was not recorded.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker

from . import settings
from .bundles import make_bundle
from .confinement import secrets
from .daemon import daemon_answers
from .errors import GradingError
from .exports import write_grades_csv, write_gradescope, write_status_csv
from .folders import read_folder
from .namespace import Namespace
from .nbgrader_env import configured, file_config, gradebook_url
from .outcome import Outcome, Status
from .pool import DaskPool, LocalPool, local_pool
from .recording import Recorder
from .release import generate_release
from .sweep import Snapshot, remove_namespace, strays
from .tasks import AssignmentBundle, GradingTask

#: How often, at most, the coordinator asks the pool whether another submission may start.
ADMIT_EVERY = 1.0


@dataclass
class GradingOptions:
    """Everything a grading run can be told; the CLI flags only set these."""

    #: None: nbgrader_config.py's Execute.timeout, else settings.CELL_TIMEOUT.
    cell_timeout: int | None = None
    submission_timeout: int = settings.SUBMISSION_TIMEOUT
    force: bool = False
    students: list[str] | None = None
    db_url: str | None = None
    feedback: bool = True
    workers: int | None = None
    scheduler: str | None = None
    retries: int = 1
    gatekeeper: bool = True
    limits: dict = field(default_factory=dict)
    #: Write the generated release into the course's release/ (nbgrader's generate_assignment).
    write_release: bool = False


@dataclass
class BatchResult:
    assignment: str
    results: list[Outcome] = field(default_factory=list)
    grades_csv: Path | None = None
    status_csv: Path | None = None
    gradescope_dir: Path | None = None
    feedback_dir: Path | None = None
    workers: int = 0
    #: Objects that appeared on the daemon during the run and are still there, left alone:
    #: nothing proves the batch made them (the daemon may be busy with other work).
    strays: list[str] = field(default_factory=list)
    seconds: float = 0.0


class GradingInterrupted(GradingError):
    """The run was stopped; what was recorded stays, the rest is graded on the next run."""

    remedy = "Run the same command again: recorded submissions are not graded twice."


def _solution_sources(notebook: dict) -> dict[str, str]:
    """The source of every solution cell of a notebook (JSON), by grade id."""
    sources = {}
    for cell in notebook["cells"]:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if nbgrader.get("solution"):
            source = cell.get("source", "")
            sources[nbgrader.get("grade_id", "")] = "".join(source) if isinstance(source, list) \
                else source
    return sources


#: nbgrader's folder names, which the course's grading uses whatever the configuration says.
_FOLDERS = {"source_directory": "source", "release_directory": "release",
            "submitted_directory": "submitted", "autograded_directory": "autograded",
            "feedback_directory": "feedback"}


def _check_folders(config) -> None:
    """Refuse plainly a configuration that moves nbgrader's folders, rather than ignore it."""
    moved = {key: value for key, value in config.get("CourseDirectory", {}).items()
             if key in _FOLDERS and value != _FOLDERS[key]}
    if moved:
        raise GradingError(
            "nbgrader_config.py renames folders course grade does not follow: "
            + ", ".join(f"CourseDirectory.{key} = {value!r}" for key, value in moved.items()),
            remedy="Use nbgrader's default folder names (source, release, submitted, "
                   "autograded, feedback).")


def find_students(root: Path, assignment: str) -> list[str]:
    """Students with a submission folder for ``assignment``, sorted."""
    submitted = root / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


class Coordinator:
    """One grading run of one assignment in one course folder."""

    def __init__(self, root: Path, assignment: str, options: GradingOptions) -> None:
        self.root = root.resolve()
        self.assignment = assignment
        self.options = options
        self.config = file_config(self.root)
        _check_folders(self.config)
        self.db_url = gradebook_url(self.root, options.db_url, self.config)
        self.cell_timeout = options.cell_timeout or configured(
            self.config, "ExecuteParameterized.timeout", "Execute.timeout",
            "ExecutePreprocessor.timeout", default=settings.CELL_TIMEOUT)
        self.recorder = Recorder(self.root, self.db_url, assignment)
        self.bundle: AssignmentBundle | None = None

    @functools.cached_property
    def notebooks(self) -> list[str]:
        """The assignment's notebooks (names without suffix), as nbgrader finds them."""
        return sorted(p.stem for p in (self.root / "source" / self.assignment).glob("*.ipynb"))

    def prepare(self) -> AssignmentBundle:
        """Put the assignment (cells, hidden tests, points) into the gradebook.

        The release is generated afresh from source/ (what the gradebook's checksums come
        from) into release/ only when asked: what students already fetched stays as it is.
        """
        if not self.notebooks:
            raise GradingError(f"no source notebook for {self.assignment} in "
                               f"{self.root}/source/{self.assignment}/",
                               remedy="Check the assignment id and --course-dir.")
        with tempfile.TemporaryDirectory(prefix="course-release-") as scratch:
            release_dir = self.root / "release" if self.options.write_release else Path(scratch)
            generate_release(self.root, release_dir, assignments=[self.assignment],
                             db_url=self.db_url)
            self.bundle = make_bundle(self.root, self.db_url, self.assignment, release_dir)
        return self.bundle

    def code_cells(self) -> int:
        """The source notebooks' code cells: an assignment with more takes longer to grade."""
        folder = self.root / "source" / self.assignment
        return sum(cell["cell_type"] == "code" for name in self.notebooks
                   for cell in json.loads((folder / f"{name}.ipynb").read_bytes())["cells"])

    def submitted_folder(self, student: str) -> Path:
        return self.root / "submitted" / student / self.assignment

    def unattempted(self, student: str) -> bool:
        """Whether every solution cell of every notebook of the submission is still as released
        (a notebook not handed in counts as untouched)."""
        folder = self.submitted_folder(student)
        for name, released in self.released_solutions.items():
            path = folder / f"{name}.ipynb"
            if not path.exists():
                continue
            try:
                if _solution_sources(json.loads(path.read_bytes())) != released:
                    return False
            except (OSError, ValueError, TypeError, AttributeError):
                return False  # unreadable: the worker reports why
        return True

    @functools.cached_property
    def released_solutions(self) -> dict[str, dict[str, str]]:
        return {path.removesuffix(".ipynb"): _solution_sources(json.loads(content))
                for path, content in (self.bundle or self.prepare()).release}

    def submission_size(self, student: str) -> int:
        folder = self.submitted_folder(student)
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) \
            if folder.is_dir() else 0

    def task(self, bundle: AssignmentBundle, student: str) -> GradingTask:
        folder = self.submitted_folder(student)
        files, left_out = read_folder(folder)
        stamp = folder / "timestamp.txt"
        return GradingTask(
            bundle=bundle, student=student,
            namespace=Namespace.for_submission(self.assignment, student,
                                               salt=str(self.root)).value,
            files=files, left_out=tuple(left_out),
            timestamp=stamp.read_text().strip() if stamp.is_file() and not stamp.is_symlink()
            else "",
            cell_timeout=self.cell_timeout,
            submission_timeout=self.options.submission_timeout,
            feedback=self.options.feedback,
            gatekeeper=self.options.gatekeeper,
            limits=tuple(sorted(self.options.limits.items())),
            private_paths=tuple(secrets(self.root)))


def grade_assignment(
    root: Path,
    assignment: str,
    options: GradingOptions | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[Outcome], None] | None = None,
    pool: LocalPool | DaskPool | None = None,
) -> BatchResult:
    """Grade the submissions of ``assignment`` under ``root/submitted`` and write the exports.

    ``on_start(to_grade, workers)`` is called once the work is known; ``on_result`` for every
    submission as it is recorded. A ``pool`` passed in is used and left open, so several runs
    can share warm workers; otherwise one is made from the options and closed.
    """
    return grade_assignments(root, [assignment], options, on_start, on_result, pool)[0]


def grade_assignments(
    root: Path,
    assignments: list[str],
    options: GradingOptions | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[Outcome], None] | None = None,
    pool: LocalPool | DaskPool | None = None,
) -> list[BatchResult]:
    """Grade several assignments as one run, one BatchResult each, in the order given.

    Every pending submission of every assignment goes to the pool at once, the longest expected
    first, so no worker idles while another finishes the last submission of one assignment.
    """
    options = options or GradingOptions()
    started = time.monotonic()
    own_pool = pool is None
    if own_pool:  # workers start while the coordinator prepares
        pool = DaskPool(options.scheduler) if options.scheduler else local_pool(options.workers)
    try:
        coordinators = [Coordinator(root, assignment, options) for assignment in assignments]
        bundles = {c.assignment: c.prepare() for c in coordinators}
        batches = {c.assignment: BatchResult(c.assignment) for c in coordinators}
        jobs = [job for c in coordinators
                for job in _pending(c, batches[c.assignment], on_result)]
        jobs.sort(key=lambda job: job.order)
        for batch in batches.values():
            batch.workers = pool.workers
        if on_start:
            on_start(len(jobs), pool.workers)
        client = None if options.scheduler else docker.from_env()
        before = Snapshot.take(client) if client is not None else None
        interrupted = True
        try:
            _run(pool, bundles, jobs, batches, on_result, client=client)
            interrupted = False  # every task is done: workers leave by themselves, folders too
        finally:
            if own_pool:
                pool.close(cancel=interrupted)
                own_pool = False
            if client is not None:
                left = strays(client, before)
                for batch in batches.values():
                    batch.strays = left
                client.close()
            for coordinator in coordinators:
                _export(coordinator, batches[coordinator.assignment])
                batches[coordinator.assignment].seconds = round(
                    time.monotonic() - started, 2)
    finally:
        if own_pool:
            pool.close(cancel=True)
    return [batches[assignment] for assignment in assignments]


@dataclass(frozen=True, eq=False)
class _Job:
    """One submission to grade, and where it goes in the submit order.

    The longest expected first, so the run does not end on one long straggler: untouched
    releases (no code of the student's runs, every test fails fast) after all the others, then
    the bigger notebooks, the submissions that took longest when graded before, the biggest files.
    """

    coordinator: Coordinator
    student: str
    order: tuple[bool, int, float, int]


def _pending(coordinator: Coordinator, batch: BatchResult, on_result) -> list[_Job]:
    """The students of one assignment still to grade; the others are reported as done."""
    jobs = []
    code_cells = coordinator.code_cells()
    for student in coordinator.options.students or find_students(coordinator.root,
                                                                  coordinator.assignment):
        previous = coordinator.recorder.previous(student)
        if previous is None or coordinator.options.force:
            took = previous.wall_seconds if previous is not None else 0.0
            size = coordinator.submission_size(student)
            jobs.append(_Job(coordinator, student,
                             (coordinator.unattempted(student), -code_cells, -took, -size)))
            continue
        score, maximum = coordinator.recorder.score(student)
        done = dataclasses.replace(previous, student=student, assignment=coordinator.assignment,
                                   status=Status.ALREADY_GRADED, score=score, max_score=maximum,
                                   seconds=0.0,
                                   detail=f"previously {previous.status.value}; --force regrades")
        batch.results.append(done)
        if on_result:
            on_result(done)
    return jobs


def _run(pool, bundles: dict[str, AssignmentBundle], jobs: list[_Job],
         batches: dict[str, BatchResult], on_result, client) -> None:
    """Start jobs as the pool admits them, record results as they come, retry infrastructure
    errors once the daemon answers again."""
    attempts = {job: 0 for job in jobs}
    waiting = collections.deque(jobs)
    in_flight: dict = {}
    #: The task each job was last sent as: the submission's folder is read once per attempt.
    sent: dict[_Job, GradingTask] = {}

    try:
        while waiting or in_flight:
            while waiting and pool.admits(len(in_flight)):
                job = waiting.popleft()
                sent[job] = job.coordinator.task(bundles[job.coordinator.assignment], job.student)
                in_flight[pool.submit(sent[job])] = job
            for future in pool.finished(in_flight, timeout=ADMIT_EVERY):
                job = in_flight.pop(future)
                result = future.result()
                attempts[job] += 1
                coordinator = job.coordinator
                if (result.status == Status.INFRASTRUCTURE
                        and attempts[job] <= coordinator.options.retries):
                    if client is not None:
                        _wait_for_daemon(60)
                    waiting.append(job)
                    continue
                outcome = coordinator.recorder.record(result, sent.pop(job).timestamp)
                batches[coordinator.assignment].results.append(outcome)
                if on_result:
                    on_result(outcome)
    except KeyboardInterrupt:
        if client is not None:
            for job in in_flight.values():
                remove_namespace(client, sent[job].namespace, match_names=True)
        recorded = sum(1 for batch in batches.values() for r in batch.results
                       if r.status != Status.INFRASTRUCTURE)
        raise GradingInterrupted(
            f"interrupted: {recorded} submissions recorded, "
            f"{len(jobs) - recorded} left to grade") from None


def _wait_for_daemon(seconds: float) -> None:
    """Before retrying, give a restarting daemon a bounded chance to come back."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not daemon_answers():
        time.sleep(1)


def _export(coordinator: Coordinator, batch: BatchResult) -> None:
    root = coordinator.root
    batch.results.sort(key=lambda r: r.student)
    batch.grades_csv = write_grades_csv(coordinator.db_url, root / "exports" / "grades.csv")
    batch.status_csv = write_status_csv(batch.results,
                                        root / "exports" / f"{coordinator.assignment}-status.csv")
    batch.gradescope_dir = write_gradescope(root, coordinator.db_url, coordinator.assignment,
                                            batch.results)
    batch.feedback_dir = root / "feedback"
