"""Course notebooks graded again beside the main daemon: every one on the other Docker Engine
(26.1 when the main daemon runs 20.10, and the reverse), and those about images and container
filesystems on Engine 26.1 with the containerd image store, each in a side daemon of its own.

The engine is Debian's docker.io of its release, unpacked into a cache folder without
installing anything (graders.engines.provide_engine); the side daemon (graders.side_daemon) has
its own socket, data, containerd and network namespace, gets the course images, and the
reference solution of its notebooks, run once in a fresh kernel, is graded on it
(graders.validate.grade_all_editions): it must earn full marks there too. The main suite grades
it run twice in one kernel (tests/test_course_notebooks.py), so both ways are checked. The
untouched release is not graded again beside: its exercises raise before they touch Docker, so
its zero does not depend on the engine, and the main suite checks it and that every grade cell
tells the two editions apart. With the main suite on one engine, the two set-ups cover 20.10,
26.1 and both of 26.1's image stores. The engine and store each grading ran on are written to
the terminal, so a CI log shows them.

Both set-ups start, and grade, in the background from the moment the session has collected
these tests, which run last (tests/conftest.py): the short tests, and the long ones that wait on
kernels and time limits, leave cores idle, which the gradings use.
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
from pathlib import Path

import docker
import pytest
from conftest import ROOT

from graders import engines
from graders.release import source_assignments

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ASSIGNMENTS = source_assignments(ROOT)
#: Whole grading run on the side daemon; the solutions of 19 notebooks take about 3 min here.
GRADING_TIMEOUT = 1200


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "a second dockerd needs Linux"
    if os.geteuid() != 0:
        return "a second dockerd needs root"
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return "the other engine comes from Debian's apt (apt-get and dpkg-deb not found)"
    return None


def _say(request, line: str) -> None:
    """A line in the terminal even while pytest captures output: the CI log must show it."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)
        else:
            print(line, flush=True)


def _engine_line(client: docker.DockerClient) -> str:
    return engines.describe(client.version(), client.info())


#: The set-ups graded beside the main daemon: the engine it does not run (classic store), and
#: Engine 26.1 with the containerd image store (unless the main daemon is just that).
SET_UPS = ("other-engine", "containerd-store")
#: What the containerd store changes is how images and container filesystems are kept: the
#: notebooks about those are graded on it; the others (containers, exec, links, volumes, ports,
#: security) run on that engine's classic store in the other set-up, or on the main daemon.
IMAGE_STORE_ASSIGNMENTS = [
    assignment for assignment in ASSIGNMENTS if assignment.split("-", 1)[0] in
    {"05", "07", "08", "09", "10", "11", "12", "13", "14", "15"}]
GRADED_ON = {"other-engine": ASSIGNMENTS, "containerd-store": IMAGE_STORE_ASSIGNMENTS}


def _set_up(main: dict, info: dict, which: str) -> tuple[str, str] | None:
    """(engine, image store) of a set-up, or None when the main daemon already is it."""
    engine = engines.engine_of(main.get("Version"))
    if which == "other-engine":
        return engines.other_engine(engine), "classic"
    if engine == "26.1" and engines.image_store(info) == "containerd":
        return None
    return "26.1", "containerd"


def _grade_here(docker_host: str, out: str, assignments: list[str]) -> None:
    """In a process of its own (its grading workers must inherit DOCKER_HOST, and a fork server
    started earlier in the test session would not have it): grade the solutions of
    ``assignments`` on the daemon at ``docker_host``, writing the scores to ``out`` as JSON."""
    os.environ["DOCKER_HOST"] = docker_host
    from graders.grading import GradingOptions
    from graders.pool import LocalPool, default_workers
    from graders.validate import grade_all_editions

    pool = LocalPool(default_workers())
    try:
        editions = grade_all_editions(ROOT, assignments, Path(out).parent,
                                      GradingOptions(feedback=False, cell_timeout=90), pool,
                                      editions=("solution",))
    finally:
        pool.close()
    found = {}
    for assignment, graded in editions.items():
        errors = []
        for cell in (graded.solved_notebook.cells if graded.solved_notebook else []):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                    errors.append(f"{name or cell.get('id')}: {output.get('ename')}: "
                                  f"{str(output.get('evalue'))[:300]}")
        found[assignment] = {"solution": graded.solution, "statuses": graded.statuses,
                             "errors": errors}
    Path(out).write_text(json.dumps(found))


class SideRun:
    """One set-up graded beside: its side daemon started and provisioned, then the solutions
    graded on it, in the background (start_in_background) while the session's other tests run.

    Whatever the fixtures must report (a skip, an error, lines for the terminal) is kept for
    them: a background thread cannot fail a test or write to pytest's terminal itself.
    """

    def __init__(self, which: str) -> None:
        self.which = which
        self.lines: list[str] = []
        self.said = 0  # lines already written to the terminal
        self.skip_reason = ""
        self.error = ""
        self.engine = ""
        self.bin_dir: Path | None = None
        self.daemon = None
        self.client: docker.DockerClient | None = None
        self.found: dict | None = None
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
        self.skip_reason = _why_not() or ""
        if self.skip_reason:
            return
        from graders.side_daemon import SideDaemon

        main = docker.from_env()
        try:
            chosen = _set_up(main.version(), main.info(), self.which)
        finally:
            main.close()
        if chosen is None:
            self.skip_reason = "the main daemon is Engine 26.1 with the containerd image store"
            return
        self.engine, store = chosen
        began = time.monotonic()
        self.bin_dir = engines.provide_engine(self.engine,
                                              on_step=lambda step: self.lines.append(f"  {step}"))
        fetched = time.monotonic() - began
        features = {engines.SNAPSHOTTER_FEATURE: True} if store == "containerd" else None
        self.daemon = SideDaemon(f"other-{store}", bin_dir=self.bin_dir, features=features)
        self.daemon.start(timeout=90)
        self.daemon.provision()
        self.client = self.daemon.client()
        assert engines.image_store(self.client.info()) == store
        self.lines.append(f"engines: side daemon ({self.daemon.docker_host}) "
                          f"{_engine_line(self.client)} [fetched in {fetched:.1f} s, started "
                          f"and provisioned in {time.monotonic() - began - fetched:.1f} s]")

    def _grade(self) -> None:
        assignments = GRADED_ON[self.which]
        out = Path(tempfile.mkdtemp(prefix=f"side-{self.which}-")) / "editions.json"
        began = time.monotonic()
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_other_engine as t; "
                "t._grade_here(sys.argv[2], sys.argv[3], sys.argv[4:])")
        # In the side daemon's network namespace: the notebooks reach its published ports there.
        self._grading = subprocess.Popen(
            self.daemon.inside([sys.executable, "-c", code, str(Path(__file__).parent),
                                self.daemon.docker_host, str(out), *assignments]),
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
        self.lines.append(f"engines: graded {len(assignments)} solutions on Engine "
                          f"{self.client.version()['Version']}, "
                          f"{engines.image_store(self.client.info())} image store, in "
                          f"{time.monotonic() - began:.0f} s")
        self.found = json.loads(out.read_text())
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


_RUNS: dict[str, SideRun] = {}


def start_in_background() -> None:
    """Start the set-ups, one after the other, in a thread: tests/conftest.py calls this as soon
    as the session has collected this module's tests and runs the short tests first. Those
    mostly wait on the main daemon, leaving much of two cores idle; the gradings fill it."""
    if not _RUNS:
        _RUNS.update({which: SideRun(which) for which in SET_UPS})
        threading.Thread(target=lambda: [run.go() for run in _RUNS.values()],
                         name="side-gradings", daemon=True).start()


def stop_background() -> None:
    """At the end of the session, whatever still runs (an interrupted session) is stopped."""
    for run in _RUNS.values():
        run.close()


def _say_new_lines(request, run: SideRun) -> None:
    for line in run.lines[run.said:]:
        _say(request, line)
    run.said = len(run.lines)


@pytest.fixture(scope="module", params=SET_UPS)
def side(client, request):
    """A side daemon of one set-up with the course images, its solutions being graded: a SideRun."""
    start_in_background()
    run = _RUNS[request.param]
    run.ready.wait()
    _say_new_lines(request, run)
    try:
        if run.skip_reason:
            pytest.skip(run.skip_reason)
        assert run.client is not None, f"the side daemon did not start: {run.error}"
        _say(request, f"engines: main daemon {_engine_line(client)}")
        yield run
    finally:
        run.close()


@pytest.fixture(scope="module")
def graded(side, request):
    side.done.wait()
    _say_new_lines(request, side)
    assert side.found is not None, side.error
    assert sorted(side.found) == sorted(GRADED_ON[side.which])
    return side.found


def test_the_side_daemon_runs_the_engine_asked_for(side):
    assert engines.engine_of(side.client.version()["Version"]) == side.engine
    assert not (side.bin_dir / "runc").exists()
    runc = {c["Name"]: c for c in side.client.version().get("Components", [])}.get("runc", {})
    # The system's runc, not the other release's (trixie's needs a newer glibc than bookworm's).
    system_runc = engines.binary_version("runc") or ""
    assert system_runc and system_runc.split("+")[0] in runc.get("Version", ""), runc


def test_doctor_names_the_side_daemons_engine_and_store(side, monkeypatch):
    from graders.doctor import diagnose

    monkeypatch.setenv("DOCKER_HOST", side.daemon.docker_host)
    checks = {check.name: check for check in diagnose()}
    assert checks["Docker daemon"].ok and side.daemon.docker_host in checks["Docker daemon"].detail
    assert f"Engine {side.engine}." in checks["Docker server version"].detail
    store = engines.image_store(side.client.info())
    assert checks["Image store"].ok and checks["Image store"].detail.startswith(store)
    assert checks["Image busybox:1.35.0"].ok and checks["Image registry:2"].ok


def test_every_solution_scores_full_marks_beside(graded):
    not_full = {assignment: [name for name, (score, top) in editions["solution"].items()
                             if score != top]
                for assignment, editions in graded.items()}
    failing = {assignment: names for assignment, names in not_full.items() if names}
    assert not failing, "grade cells that fail on the solution: " + "; ".join(
        f"{assignment} {names} (errors: {graded[assignment]['errors']})"
        for assignment, names in failing.items())
    assert all(editions["statuses"]["solution"] == "graded" for editions in graded.values())
    assert all(sum(top for _, top in editions["solution"].values()) > 0
               for editions in graded.values())

