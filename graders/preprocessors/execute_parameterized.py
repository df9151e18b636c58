"""nbgrader's Execute with per-submission parameters, a wall-clock limit, judges and a sweep.

Papermill only injects the parameters here; nbgrader's Execute runs the kernel. With a judge
(``judge_folder``), no grade cell runs in the learner's kernel: each is run, hidden tests and
all, from the instructor's source notebook in the submission's judge process
(graders.judging), which calls the learner's functions in the kernel and gets data back; the
verdicts go to ``resources["course_verdicts"]`` for SaveJudgedGrades. A grade cell that fails,
times out or never runs scores nothing. A submission that outlives its time limit, or whose
kernel dies, has every remaining code cell marked as not run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import docker
from docker.errors import DockerException
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from papermill.parameterize import parameterize_notebook
from traitlets import Bool, Dict, Integer, List, Unicode

from .. import confinement
from ..daemon_watch import DaemonWatch
from ..errors import DaemonUnavailable
from ..gatekeeper import Gatekeeper, Limits
from ..judging.judge import Judge, JudgeFailed, course_cells, learner_names
from ..judging.learner import LearnerKernel
from ..outcome import Outcome, Status
from ..settings import PARAMETERS_GRADE_ID
from ..sweep import swept
from .restore_deleted_cells import METADATA_KEY

#: The judge names what it makes after the submission's namespace plus this: its fixtures (say,
#: a registry the setup cell starts) live beside the kernel's, and neither side's reset
#: removes the other's. The gatekeeper owns and sweeps both alike.
JUDGE_SUFFIX = "-judge"
TIMEOUT_ERROR = "CellTimeoutError"
#: What a kernel raises when it cannot reach Docker at all (graders.lab.connect, docker-py).
UNREACHABLE_DAEMON_ERRORS = ("DaemonUnavailable", "DockerException")


def _error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message,
                        traceback=[f"{ename}: {message}"])


def _name(cell: NotebookNode, index: int) -> str:
    """How a status names a cell: its grade_id or cell id, which the instructor can search for."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id") \
        or f"#{index}"


def _support_files_to(folder: Path, confined) -> None:
    """The assignment's data files, beside which nbgrader runs a notebook, copied to where a
    confined kernel runs (its scratch folder) and given to the submission's user."""
    scratch = Path(confined.scratch)
    if folder.resolve() == scratch.resolve():
        return
    shutil.copytree(folder, scratch, dirs_exist_ok=True, symlinks=True,
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    for top, folders, files in os.walk(scratch):
        for name in folders + files:
            os.chown(Path(top) / name, confined.uid, confined.uid, follow_symlinks=False)


def _judge_files(folder: Path) -> str:
    """A copy of the assignment's data files from source/ for the judge to work beside, as
    nbgrader's tests run beside them: readable by the submission's user, writable by no one
    but the grader, so nothing the learner's code does changes what a test reads."""
    copy = Path(tempfile.mkdtemp(prefix="judge-files-"))
    shutil.copytree(folder, copy, dirs_exist_ok=True, symlinks=False,
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    for top, _, files in os.walk(copy):
        os.chmod(top, 0o755)
        for name in files:
            os.chmod(Path(top) / name, 0o644)
    return str(copy)


class ExecuteParameterized(Execute):
    """Execute one submission in its own namespace and sweep what it left on the daemon."""

    parameters = Dict({}, help="Values injected after the cell tagged `parameters`.").tag(
        config=True)
    namespace = Unicode("", help="The submission's namespace, swept after execution.").tag(
        config=True)
    submission_timeout = Integer(300, help="Wall-clock limit for the whole notebook, seconds.").tag(
        config=True)
    outcome_folder = Unicode(
        "", help="Where to write the Outcome of each notebook's execution (<notebook>.json)."
    ).tag(config=True)
    gatekeeper = Bool(
        True, help="Give the kernel a gatekeeper's endpoint instead of the daemon itself."
    ).tag(config=True)
    scratch_dir = Unicode("", help="The one host folder the submission may bind-mount.").tag(
        config=True)
    limits = Dict({}, help="Overrides of the gatekeeper's Limits (caps and ceilings).").tag(
        config=True)
    confine = Bool(
        True, help="Run the kernel as the submission's own user, away from the grader's files "
                   "(needs root and the gatekeeper: a confined kernel cannot reach the daemon's "
                   "own socket; without root the gatekeeper alone guards the daemon)."
    ).tag(config=True)
    hidden_paths = List([], help="Files and folders the confined kernel must not see.").tag(
        config=True)
    judge_folder = Unicode(
        "", help="The assignment's source folder: each notebook's grade cells are judged from "
                 "the instructor's notebook of the same name there, outside the learner's "
                 "kernel. Empty: grade cells run in the kernel (nbgrader's way)."
    ).tag(config=True)

    raise_on_iopub_timeout = Bool(False).tag(config=True)
    # The kernel's own start-up warnings go to the grader's terminal, not to any cell.
    extra_arguments = List(["--HistoryManager.hist_file=:memory:",
                            "--IPKernelApp.log_level=ERROR"]).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        notebook = (resources or {}).get("nbgrader", {}).get("notebook", "")
        self._judge_source = str(Path(self.judge_folder) / f"{notebook}.ipynb") \
            if self.judge_folder and notebook else ""
        outcome_file = Path(self.outcome_folder) / f"{notebook}.json" \
            if self.outcome_folder and notebook else None
        self._outcome = Outcome(namespace=self.namespace)
        self._outcome.restored_cells = list(nb.metadata.get(METADATA_KEY, {})
                                            .get("restored_cells", []))
        self._deadline = time.monotonic() + self.submission_timeout
        self._abandoned = ""
        self._cell_timeout = self.timeout
        self._kernel_docker_host = ""
        self._student_code_ran = False
        self._judge = None
        self._judge_workdir = ""
        self._course = course_cells(Path(self._judge_source)) if self._judge_source else {}
        self._learner_names = learner_names(Path(self._judge_source)) if self._judge_source \
            else []
        self._verdicts = self._outcome.verdicts
        if resources is not None and self._judge_source:
            resources["course_verdicts"] = self._verdicts
        self._confinement = None
        if self.confine and self.gatekeeper and self.scratch_dir and confinement.available():
            self._confinement = confinement.Confinement(self.namespace, Path(self.scratch_dir),
                                                        hidden=list(self.hidden_paths))
            self._confinement.prepare()
            folder = (resources or {}).get("metadata", {}).get("path", "")
            if folder:
                _support_files_to(Path(folder), self._confinement)
        nb = parameterize_notebook(self._prepare(nb), self.parameters)
        started = time.monotonic()
        client = None
        try:
            try:
                client = docker.from_env()
                client.ping()
            except DockerException as error:
                self._outcome.status = Status.INFRASTRUCTURE
                self._outcome.detail = f"Docker daemon unavailable: {error}"
                raise DaemonUnavailable(self._outcome.detail) from None
            with swept(client, self.namespace) as removed, \
                    DaemonWatch() as watch, self._gatekeeper() as gatekeeper:
                self._kernel_docker_host = gatekeeper.docker_host if gatekeeper else ""
                if self._judge_source:
                    self._start_judge(gatekeeper)
                try:
                    nb, resources = super().preprocess(nb, resources, km)
                finally:
                    if self._judge is not None:
                        self._judge.stop()
                    if self._judge_workdir:
                        shutil.rmtree(self._judge_workdir, ignore_errors=True)
            if gatekeeper:
                self._outcome.refused = gatekeeper.refusals[:20]
            if watch.outage:
                self._outcome.status, self._outcome.detail = Status.INFRASTRUCTURE, watch.outage
            self._outcome.swept = removed.total
            self._outcome.sweep_failures = removed.failures
        finally:
            if self._confinement is not None:
                self._confinement.end()
            self._outcome.seconds = round(time.monotonic() - started, 2)
            if client is not None:
                client.close()
            if outcome_file is not None:
                self._outcome.save(outcome_file)
        return nb, resources

    def _start_judge(self, gatekeeper) -> None:
        """The judge starts before the kernel, so nothing of the learner's runs yet."""
        host = gatekeeper.judge_docker_host if gatekeeper else os.environ.get("DOCKER_HOST", "")
        self._judge_workdir = _judge_files(Path(self.judge_folder)) if self.judge_folder else ""
        self._judge = Judge(host, self._confinement, self._judge_workdir)
        try:
            self._judge.start()
        except JudgeFailed as error:
            self._outcome.status = Status.INFRASTRUCTURE
            self._outcome.detail = f"the judge could not start: {error}"
            raise

    def _gatekeeper(self):
        if not self.gatekeeper:
            return nullcontext()
        return Gatekeeper(self.namespace, Path(self.scratch_dir or os.getcwd()),
                          limits=Limits(**self.limits),
                          client_uid=self._confinement.uid if self._confinement else None)

    def create_kernel_manager(self):
        """A confined kernel when grading as root: see graders.confinement."""
        if self._confinement is not None:
            self.kernel_manager_class = confinement.ConfinedKernelManager
        km = super().create_kernel_manager()
        if self._confinement is not None:
            km.confine(self._confinement)
        return km

    def start_new_kernel(self, **kwargs):
        """Start the kernel with the gatekeeper as its Docker daemon.

        nbconvert's ExecutePreprocessor calls this synchronous wrapper, which nbclient binds
        to its own coroutine: overriding the coroutine alone would never run.
        """
        if self._kernel_docker_host:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            kwargs.setdefault("env", {**env, "DOCKER_HOST": self._kernel_docker_host})
        return super().start_new_kernel(**kwargs)

    def _prepare(self, nb):
        """Tag the real parameters cell and strip tags a student could use to move the injection.

        papermill needs ``metadata.tags`` on every cell and ``metadata.papermill`` on the notebook;
        nbgrader restores a locked cell's source but not its tags.
        """
        for cell in nb.cells:
            tags = [t for t in cell.metadata.get("tags", [])
                    if t not in ("parameters", "injected-parameters")]
            if cell.metadata.get("nbgrader", {}).get("grade_id") == PARAMETERS_GRADE_ID:
                tags.append("parameters")
            cell.metadata["tags"] = tags
        nb.metadata.setdefault("papermill", {})
        return nb

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        course = self._course.get(grade_id)
        if course is not None and course["grade"]:
            return self._judge_grade_cell(cell, resources, index, grade_id, course), resources
        seconds = self._seconds_for(cell)
        if seconds is None:
            return cell, resources
        self.timeout = seconds
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            cell.outputs.append(_error_output("DeadKernelError", "the kernel died in this cell"))
            self._abandon(Status.KERNEL_DIED, f"the kernel died in cell {_name(cell, index)}")
            return cell, resources
        if any(o.get("ename") == TIMEOUT_ERROR for o in cell.get("outputs", [])):
            self._outcome.status = Status.TIMED_OUT
            self._outcome.detail = self._outcome.detail or (
                f"cell {_name(cell, index)} ran longer than {self.timeout} s and was interrupted")
        self._check_course_cell_reached_docker(cell, index)
        if course is not None and not self._abandoned:
            self._judge_course_cell(cell, index, grade_id, course)
        return cell, resources

    def _seconds_for(self, cell) -> int | None:
        """The cell's time limit within what is left of the submission's; None (and the cell
        marked as not run) once the submission is abandoned."""
        remaining = self._deadline - time.monotonic()
        if not self._abandoned and remaining <= 0:
            self._abandon(Status.TIMED_OUT,
                          f"the submission's time limit of {self.submission_timeout} s ran out")
        if self._abandoned:
            cell.outputs = [_error_output("NotRun", f"not run: {self._abandoned}")]
            return None
        return max(1, min(self._cell_timeout, int(remaining) + 1))

    def _judge_grade_cell(self, cell, resources, index: int, grade_id: str, course: dict):
        """Run a grade cell in the judge; its verdict, never the kernel's word, is the grade."""
        self._student_code_ran = True
        seconds = self._seconds_for(cell)
        if seconds is None:
            return cell
        self._attach_learner()
        try:
            judged = self._judge.run(course["source"], grade_id, self._learner_names, seconds)
            outputs = [NotebookNode(output_type="stream", name=o["name"], text=o["text"])
                       for o in judged.outputs]
            error = judged.error
        except JudgeFailed as failure:
            outputs, error = [], {"ename": "JudgeError", "evalue": str(failure)}
            if "ran out of time" in str(failure):
                self._outcome.status = Status.TIMED_OUT
                self._outcome.detail = self._outcome.detail or (
                    f"cell {_name(cell, index)} ran longer than {seconds} s and was stopped")
        if error is not None:
            outputs.append(_error_output(error["ename"], error["evalue"]))
        cell.outputs = outputs
        self._verdicts[grade_id] = {"score": course["points"] if error is None else 0.0,
                                    "max_score": course["points"],
                                    "error": "" if error is None else
                                    f"{error['ename']}: {error['evalue']}"[:300]}
        return cell

    def _judge_course_cell(self, cell, index: int, grade_id: str, course: dict) -> None:
        """Run a course cell (settings, setup) in the judge too, from the source notebook."""
        source = course["source"]
        if grade_id == PARAMETERS_GRADE_ID:
            values = dict(self.parameters)
            if "NAMESPACE" in values:
                values["NAMESPACE"] += JUDGE_SUFFIX
            source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
        try:
            judged = self._judge.run(source, grade_id, [], self._cell_timeout)
            failure = judged.error and f"{judged.error['ename']}: {judged.error['evalue']}"
        except JudgeFailed as error:
            failure = str(error)
        if failure and not self._student_code_ran:
            self._abandon(Status.INFRASTRUCTURE,
                          f"the judge could not run course cell {_name(cell, index)}: "
                          f"{failure}"[:300])

    def _attach_learner(self) -> None:
        if self._judge.learner is None:
            self._judge.attach(LearnerKernel(self.km.get_connection_info(),
                                             run_sync(self.km.interrupt_kernel)))

    def _check_course_cell_reached_docker(self, cell, index: int) -> None:
        """A course cell that cannot reach Docker before any student code ran is the grader's fault.

        Only locked cells count (nbgrader restores their source, so a student cannot write one)
        and only before the first cell of the student's: what follows could be the student's
        doing. Scored, it would be a silent zero for every test; reported, it is retried.
        """
        if self._student_code_ran:
            return
        metadata = cell.get("metadata", {})
        course_cell = metadata.get("nbgrader", {}).get("locked") or \
            "injected-parameters" in metadata.get("tags", [])
        if not course_cell:
            self._student_code_ran = True
            return
        for output in cell.get("outputs", []):
            if output.get("ename") in UNREACHABLE_DAEMON_ERRORS:
                self._abandon(Status.INFRASTRUCTURE,
                              f"the kernel could not reach Docker in course cell "
                              f"{_name(cell, index)}: {output.get('evalue', '')}"[:300])
                return

    def _abandon(self, status: Status, reason: str) -> None:
        self._abandoned = reason
        self._outcome.status = status
        self._outcome.detail = reason
