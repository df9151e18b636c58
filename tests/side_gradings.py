"""Course notebooks graded on side daemons, in the background, while the session's other tests
run on the main daemon.

Three set-ups, each a side daemon of its own (graders.side_daemon: its own socket, data,
containerd and network namespace), given the course images:

- ``main-engine``: the main daemon's own engine and image store (its dockerd, from PATH). Both
  editions of every notebook are graded there, the solution handed in run twice in one kernel
  (tests/test_course_notebooks.py checks the grades).
- ``other-engine``: the engine the main daemon does not run (26.1 beside 20.10, and the
  reverse), classic image store; the solutions of every notebook, run once.
- ``containerd-store``: Engine 26.1 with the containerd image store (unless the main daemon is
  just that); the solutions of the notebooks about images and container filesystems.

The other engine is Debian's docker.io of its release, unpacked into a cache folder without
installing anything (graders.engines.provide_engine). tests/test_other_engine.py checks the
last two.

Why side daemons and the background: the short tests, and the long ones that wait on kernels and
time limits, leave cores idle, which the gradings fill; and a daemon of their own keeps the
other tests' checks that nothing is left on the main daemon (conftest.no_leftovers) exact, as
those compare the whole daemon. tests/conftest.py starts the set-ups the session needs as soon as
the tests are collected, and runs the tests that read the gradings last.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from graders import engines
from graders.release import source_assignments

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = source_assignments(ROOT)
#: Whole grading run on one side daemon; both editions of 19 notebooks, the solution run twice,
#: take about 5 min on two cores.
GRADING_TIMEOUT = 1500
#: The notebooks about images and container filesystems: what the containerd store changes.
#: The others (containers, exec, links, volumes, ports, security) run on that engine's classic
#: store in the other-engine set-up.
IMAGE_STORE_ASSIGNMENTS = [
    assignment for assignment in ASSIGNMENTS if assignment.split("-", 1)[0] in
    {"05", "07", "08", "09", "10", "11", "12", "13", "14", "15"}]


@dataclass(frozen=True)
class Grading:
    """What a set-up grades: which notebooks, which editions, the solution run twice or once."""

    assignments: tuple[str, ...]
    editions: tuple[str, ...]
    rerun: bool


GRADINGS = {
    "main-engine": Grading(tuple(ASSIGNMENTS), ("solution", "release"), rerun=True),
    "other-engine": Grading(tuple(ASSIGNMENTS), ("solution",), rerun=False),
    "containerd-store": Grading(tuple(IMAGE_STORE_ASSIGNMENTS), ("solution",), rerun=False),
}
#: Which test module reads which set-ups' gradings.
READ_BY = {"test_course_notebooks": ("main-engine",),
           "test_other_engine": ("other-engine", "containerd-store")}


def why_not() -> str | None:
    """Why no side daemon can run here, or None."""
    if sys.platform != "linux":
        return "a second dockerd needs Linux"
    if os.geteuid() != 0:
        return "a second dockerd needs root"
    return None


def set_up(main: dict, info: dict, which: str) -> tuple[str, str] | None:
    """(engine, image store) of a set-up, or None when the main daemon already is it."""
    engine = engines.engine_of(main.get("Version"))
    if which == "main-engine":
        return engine, engines.image_store(info)
    if which == "other-engine":
        return engines.other_engine(engine), "classic"
    if engine == "26.1" and engines.image_store(info) == "containerd":
        return None
    return "26.1", "containerd"


def written(notebook) -> list[list[str]]:
    """[cell, what] for each error, and each write to stderr, in a graded notebook."""
    found = []
    for cell in (notebook.cells if notebook else []):
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append([name, f"{output.get('ename')}: {str(output.get('evalue'))[:300]}"])
            elif output.get("name") == "stderr":
                found.append([name, f"stderr: {output.get('text', '')[:300]}"])
    return found


def has_first_pass(notebook) -> bool:
    """Whether a graded notebook holds the first pass of a solution run twice (run_twice)."""
    return any(cell.get("id", "").startswith("first-") for cell in (notebook.cells if notebook
                                                                     else []))


def grade_here(docker_host: str, out: str, which: str, assignments: list[str]) -> None:
    """In a process of its own (its grading workers must inherit DOCKER_HOST, and a fork server
    started earlier in the test session would not have it): grade ``assignments`` as the set-up
    ``which`` asks on the daemon at ``docker_host``, writing grades, what the graded notebooks
    wrote, and what grading left on the daemon to ``out`` as JSON."""
    os.environ["DOCKER_HOST"] = docker_host
    client = docker.DockerClient(base_url=docker_host, version="auto")
    try:
        found = grade(client, which, assignments, Path(out).parent)
    finally:
        client.close()
    Path(out).write_text(json.dumps(found))


def grade(client: docker.DockerClient, which: str, assignments: list[str], workdir: Path) -> dict:
    """Grade ``assignments`` as the set-up ``which`` asks, on the daemon ``client`` talks to
    (the grading workers reach it through DOCKER_HOST): the summary of the run."""
    from conftest import daemon_objects

    from graders.grading import GradingOptions
    from graders.pool import LocalPool, default_workers
    from graders.validate import grade_all_editions

    grading = GRADINGS[which]
    # Generous limits: the machine is shared with the session's other tests.
    before = daemon_objects(client)
    pool = LocalPool(default_workers())
    try:
        editions = grade_all_editions(
            ROOT, assignments, workdir,
            GradingOptions(feedback=False, cell_timeout=90, submission_timeout=900), pool,
            editions=grading.editions, rerun=grading.rerun)
    finally:
        pool.close()
    return summary(editions, before, daemon_objects(client))


def summary(editions: dict, before: dict, after: dict) -> dict:
    """What the tests read of a grading run (validate.grade_all_editions gives ``editions``),
    as plain data: per assignment the grades, statuses, what the graded notebook wrote and
    whether it holds a first pass; and the objects on the daemon ``after`` and not ``before``."""
    found = {assignment: {
        "solution": graded.solution, "release": graded.release, "statuses": graded.statuses,
        "written": written(graded.solved_notebook),
        "first_pass": has_first_pass(graded.solved_notebook),
    } for assignment, graded in editions.items()}
    leaked = {kind: sorted(after[kind] - before[kind]) for kind in after
              if after[kind] - before[kind]}
    return {"assignments": found, "leaked": leaked}


class SideRun:
    """One set-up: its side daemon started and provisioned, then its notebooks graded on it, in
    the background (start_in_background) while the session's other tests run.

    Whatever the fixtures must report (a skip, an error, lines for the terminal) is kept for
    them: a background thread cannot fail a test or write to pytest's terminal itself.
    """

    def __init__(self, which: str, assignments: list[str]) -> None:
        self.which = which
        self.assignments = assignments
        self.lines: list[str] = []
        self.said = 0  # lines already written to the terminal
        self.skip_reason = ""
        self.error = ""
        self.engine = ""
        self.bin_dir: Path | None = None
        self.daemon = None
        self.client: docker.DockerClient | None = None
        self.found: dict | None = None
        self.leaked: dict | None = None
        self.ready, self.done, self.stopping = threading.Event(), threading.Event(), \
            threading.Event()
        self._grading: subprocess.Popen | None = None

    def go(self) -> None:
        try:
            if not self.stopping.is_set():
                self._start()
            if self.client is not None and not self.stopping.is_set():
                self.ready.set()
                self._grade()
        except Exception as error:  # handed to the fixtures, which fail the tests with it
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.ready.set()
            self.done.set()

    def _start(self) -> None:
        self.skip_reason = why_not() or ""
        if self.skip_reason:
            return
        from graders.side_daemon import SideDaemon

        main = docker.from_env()
        try:
            chosen = set_up(main.version(), main.info(), self.which)
        finally:
            main.close()
        if chosen is None:
            self.skip_reason = "the main daemon is Engine 26.1 with the containerd image store"
            return
        self.engine, store = chosen
        began = time.monotonic()
        if self.which == "main-engine":
            fetched = ""  # the main daemon's own dockerd, from PATH
        else:
            if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
                self.skip_reason = ("the other engine comes from Debian's apt (apt-get and "
                                    "dpkg-deb not found)")
                return
            self.bin_dir = engines.provide_engine(
                self.engine, on_step=lambda step: self.lines.append(f"  {step}"))
            fetched = f"fetched in {time.monotonic() - began:.1f} s, "
        started = time.monotonic()
        features = {engines.SNAPSHOTTER_FEATURE: True} if store == "containerd" else None
        kind = "main" if self.which == "main-engine" else "other"
        self.daemon = SideDaemon(f"{kind}-{store}", bin_dir=self.bin_dir, features=features)
        self.daemon.start(timeout=90)
        self.daemon.provision()
        self.client = self.daemon.client()
        assert engines.image_store(self.client.info()) == store
        self.lines.append(f"engines: side daemon ({self.daemon.docker_host}) "
                          f"{engine_line(self.client)} [{fetched}started and provisioned in "
                          f"{time.monotonic() - started:.1f} s]")

    def _grade(self) -> None:
        out = Path(tempfile.mkdtemp(prefix=f"side-{self.which}-")) / "editions.json"
        began = time.monotonic()
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import side_gradings as s; "
                "s.grade_here(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])")
        # In the side daemon's network namespace: the notebooks reach its published ports there.
        self._grading = subprocess.Popen(
            self.daemon.inside([sys.executable, "-c", code, str(Path(__file__).parent),
                                self.daemon.docker_host, str(out), self.which,
                                *self.assignments]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env={**os.environ, "DOCKER_HOST": self.daemon.docker_host})
        if self.stopping.is_set():  # close() came while it started
            self._end_grading()
        try:
            _, stderr = self._grading.communicate(timeout=GRADING_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._end_grading()
            raise
        if self._grading.returncode != 0:
            raise RuntimeError(f"grading on Engine {self.engine} failed:\n{stderr[-3000:]}")
        editions = " and ".join(GRADINGS[self.which].editions)
        self.lines.append(f"engines: graded the {editions} of {len(self.assignments)} notebooks "
                          f"on Engine {self.client.version()['Version']}, "
                          f"{engines.image_store(self.client.info())} image store, in "
                          f"{time.monotonic() - began:.0f} s")
        written = json.loads(out.read_text())
        self.found, self.leaked = written["assignments"], written["leaked"]
        shutil.rmtree(out.parent, ignore_errors=True)

    def _end_grading(self) -> None:
        """The grading's whole process group: its workers and kernels go with it."""
        if self._grading is not None and self._grading.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._grading.pid, signal.SIGKILL)
            self._grading.wait()

    def close(self) -> None:
        """Stop the grading if it still runs, and the side daemon with everything it holds."""
        self.stopping.set()
        self._end_grading()
        self.done.wait()
        if self.client is not None:
            self.client.close()
        if self.daemon is not None:
            self.daemon.stop(remove_data=True)


def engine_line(client: docker.DockerClient) -> str:
    return engines.describe(client.version(), client.info())


_RUNS: dict[str, SideRun] = {}


def start_in_background(wanted: dict[str, list[str]]) -> None:
    """Start the set-ups ``wanted`` (set-up: the notebooks it grades), one after the other, in a
    thread: tests/conftest.py calls this as soon as the session has collected its tests."""
    if not _RUNS:
        _RUNS.update({which: SideRun(which, assignments) for which, assignments in
                      wanted.items()})
        threading.Thread(target=lambda: [run.go() for run in _RUNS.values()],
                         name="side-gradings", daemon=True).start()


def run_of(which: str) -> SideRun:
    """The set-up ``which``, started now with all its notebooks if the session has not."""
    if which not in _RUNS:
        start_in_background({which: list(GRADINGS[which].assignments)})
    if which not in _RUNS:  # the session started others
        raise LookupError(f"the set-up {which} was not started for this session")
    return _RUNS[which]


def stop_background() -> None:
    """At the end of the session, whatever still runs (an interrupted session) is stopped."""
    for run in _RUNS.values():
        run.close()


def say(request, line: str) -> None:
    """A line in the terminal even while pytest captures output: the CI log must show it."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)
        else:
            print(line, flush=True)


def say_new_lines(request, run: SideRun) -> None:
    for line in run.lines[run.said:]:
        say(request, line)
    run.said = len(run.lines)


def wanted(items) -> dict[str, list[str]]:
    """The set-ups a session's collected ``items`` read, each with the notebooks they ask for:
    all of a set-up's, unless -k chose some of test_course_notebooks' parametrized tests."""
    found: dict[str, set[str]] = {}
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "")
        params = getattr(getattr(item, "callspec", None), "params", {})
        for which in READ_BY.get(module, ()):
            if params.get("side", which) == which:
                found.setdefault(which, set()).add(params.get("assignment", ""))
    return {which: [a for a in GRADINGS[which].assignments if a in found[which]]
            if "" not in found[which] else list(GRADINGS[which].assignments)
            for which in GRADINGS if which in found}
