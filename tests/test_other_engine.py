"""Course notebooks graded again beside the main daemon: every one on the other Docker Engine
(26.1 when the main daemon runs 20.10, and the reverse), and those about images and container
filesystems on Engine 26.1 with the containerd image store, each in a side daemon of its own.

The engine is Debian's docker.io of its release, unpacked into a cache folder without
installing anything (graders.engines.provide_engine); the side daemon (graders.side_daemon) has
its own socket, data, containerd and network namespace, gets the course images, and the
reference solution of its notebooks is graded on it as tests/test_course_notebooks.py grades it
on the main one (graders.validate.grade_all_editions): it must earn full marks there too. The
untouched release is not graded again beside: its exercises raise before they touch Docker, so
its zero does not depend on the engine, and the main suite checks it and that every grade cell
tells the two editions apart. With the main suite on one engine, the two set-ups cover 20.10,
26.1 and both of 26.1's image stores. The engine and store each grading ran on are written to
the terminal, so a CI log shows them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="module", params=SET_UPS)
def side(client, request):
    """A side daemon of one set-up with the course images: (engine, daemon, client, bin folder)."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from graders.side_daemon import SideDaemon

    main = client.version()
    chosen = _set_up(main, client.info(), request.param)
    if chosen is None:
        pytest.skip("the main daemon is Engine 26.1 with the containerd image store already")
    engine, store = chosen
    began = time.monotonic()
    bin_dir = engines.provide_engine(engine, on_step=lambda step: _say(request, f"  {step}"))
    fetched = time.monotonic() - began
    features = {engines.SNAPSHOTTER_FEATURE: True} if store == "containerd" else None
    daemon = SideDaemon(f"other-{store}", bin_dir=bin_dir, features=features)
    daemon.start(timeout=90)
    try:
        daemon.provision()
        side_client = daemon.client()
        assert engines.image_store(side_client.info()) == store
        _say(request, f"engines: main daemon {_engine_line(client)}")
        _say(request, f"engines: side daemon ({daemon.docker_host}) {_engine_line(side_client)}"
                      f" [fetched in {fetched:.1f} s, started and provisioned in "
                      f"{time.monotonic() - began - fetched:.1f} s]")
        yield engine, daemon, side_client, bin_dir, GRADED_ON[request.param]
        side_client.close()
    finally:
        daemon.stop(remove_data=True)


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


@pytest.fixture(scope="module")
def graded(side, request, tmp_path_factory):
    engine, daemon, side_client, _bin, assignments = side
    out = tmp_path_factory.mktemp("other-engine") / "editions.json"
    began = time.monotonic()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_other_engine as t; "
            "t._grade_here(sys.argv[2], sys.argv[3], sys.argv[4:])")
    # In the side daemon's network namespace: the notebooks reach its published ports there.
    done = subprocess.run(daemon.inside([sys.executable, "-c", code, str(Path(__file__).parent),
                                         daemon.docker_host, str(out), *assignments]),
                          capture_output=True, text=True,
                          timeout=GRADING_TIMEOUT, env={**os.environ,
                                                        "DOCKER_HOST": daemon.docker_host})
    seconds = time.monotonic() - began
    assert done.returncode == 0, f"grading on Engine {engine} failed:\n{done.stderr[-3000:]}"
    _say(request, f"engines: graded {len(assignments)} solutions on Engine "
                  f"{side_client.version()['Version']}, "
                  f"{engines.image_store(side_client.info())} image store, in {seconds:.0f} s")
    found = json.loads(out.read_text())
    assert sorted(found) == sorted(assignments)
    return found


def test_the_side_daemon_runs_the_engine_asked_for(side):
    engine, daemon, side_client, bin_dir, _assignments = side
    assert engines.engine_of(side_client.version()["Version"]) == engine
    assert not (bin_dir / "runc").exists()
    runc = {c["Name"]: c for c in side_client.version().get("Components", [])}.get("runc", {})
    # The system's runc, not the other release's (trixie's needs a newer glibc than bookworm's).
    system_runc = engines.binary_version("runc") or ""
    assert system_runc and system_runc.split("+")[0] in runc.get("Version", ""), runc


def test_doctor_names_the_side_daemons_engine_and_store(side, monkeypatch):
    from graders.doctor import diagnose

    engine, daemon, _client, _bin, _assignments = side
    monkeypatch.setenv("DOCKER_HOST", daemon.docker_host)
    checks = {check.name: check for check in diagnose()}
    assert checks["Docker daemon"].ok and daemon.docker_host in checks["Docker daemon"].detail
    assert f"Engine {engine}." in checks["Docker server version"].detail
    store = engines.image_store(_client.info())
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

