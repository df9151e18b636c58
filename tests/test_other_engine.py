"""Course notebooks graded again beside the main daemon: every one on the other Docker Engine
(26.1 when the main daemon runs 20.10, and the reverse), and those about images and container
filesystems on Engine 26.1 with the containerd image store, each in a side daemon of its own
(tests/side_gradings.py, which grades them in the background).

The reference solution, run once in a fresh kernel, must earn full marks there too; the main
engine's grading (tests/test_course_notebooks.py) hands it in run twice in one kernel, so both
ways are checked. The untouched release is not graded again beside: its exercises raise before
they touch Docker, so its zero does not depend on the engine. With the main engine's grading,
the set-ups cover 20.10, 26.1 and both of 26.1's image stores. The engine and store each grading
ran on are written to the terminal, so a CI log shows them.
"""

from __future__ import annotations

import pytest
import side_gradings

from graders import engines

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SET_UPS = ("other-engine", "containerd-store")


@pytest.fixture(scope="module", params=SET_UPS)
def side(client, request):
    """A side daemon of one set-up with the course images, its solutions being graded: a SideRun."""
    run = side_gradings.run_of(request.param)
    run.ready.wait()
    side_gradings.say_new_lines(request, run)
    try:
        if run.skip_reason:
            pytest.skip(run.skip_reason)
        assert run.client is not None, f"the side daemon did not start: {run.error}"
        side_gradings.say(request, f"engines: main daemon {side_gradings.engine_line(client)}")
        yield run
    finally:
        run.close()


@pytest.fixture(scope="module")
def graded(side, request):
    side.done.wait()
    side_gradings.say_new_lines(request, side)
    assert side.found is not None, side.error
    assert sorted(side.found) == sorted(side.assignments)
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
        f"{assignment} {names} (the notebook wrote: {graded[assignment]['written']})"
        for assignment, names in failing.items())
    assert all(editions["statuses"]["solution"] == "graded" for editions in graded.values())
    assert all(sum(top for _, top in editions["solution"].values()) > 0
               for editions in graded.values())



def test_grading_beside_leaves_nothing_on_its_daemon(side, graded):
    assert side.leaked == {}
