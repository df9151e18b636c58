"""A graded kernel reaches Docker only through its gatekeeper, and (as root) runs confined."""

from __future__ import annotations

import json
import os
import textwrap

import builders as b
import nbformat
import pytest
from conftest import ROOT

from graders import confinement
from graders.gatekeeper import Gatekeeper
from graders.outcome import Outcome
from graders.preprocessors import ExecuteParameterized
from graders.settings import BUSYBOX_IMAGE

pytestmark = pytest.mark.docker
NAMESPACE = "sandbox00001"

PROBE = textwrap.dedent("""\
    import json, os, socket
    import docker

    found = {"uid": os.getuid(), "docker_host": os.environ.get("DOCKER_HOST", "")}
    try:
        client.containers.run(BUSYBOX_IMAGE, ["true"], privileged=True, remove=True,
                              name=f"{NAMESPACE}-privileged")
        found["privileged"] = "allowed"
    except docker.errors.APIError as error:
        found["privileged"] = error.explanation
    for name, attempt in {
        "daemon_socket": lambda: socket.socket(socket.AF_UNIX).connect("/var/run/docker.sock"),
        "solutions": lambda: os.listdir(SOURCE),
        "write_outside_scratch": lambda: open(os.path.join(OUTSIDE, "probe"), "w"),
        "signal_init": lambda: os.kill(1, 0),
        "other_gatekeeper": lambda: socket.socket(socket.AF_UNIX).connect(OTHER_GATEKEEPER),
    }.items():
        try:
            attempt()
            found[name] = "allowed"
        except OSError as error:
            found[name] = type(error).__name__
    print(json.dumps(found))
""")


NOTEBOOK = "mini"


def _resources(path) -> dict:
    """What nbgrader hands a preprocessor: where the notebook runs, and which one it is."""
    return {"metadata": {"path": str(path)}, "nbgrader": {"notebook": NOTEBOOK}}


def _execute(tmp_path, **traits):
    """Run the mini assignment plus the probe, beside another submission's gatekeeper."""
    with Gatekeeper("sandbox00002", tmp_path, client_uid=confinement.FIRST_UID - 1) as other:
        return _execute_beside(tmp_path, str(other.socket_path), **traits)


def _execute_beside(tmp_path, other_gatekeeper: str, **traits):
    nb = b.mini_source()
    nb.cells.append(nbformat.v4.new_code_cell(PROBE, id="probe"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = str(ROOT / "source")
    execute = ExecuteParameterized(
        timeout=30, namespace=NAMESPACE, scratch_dir=str(scratch), outcome_folder=str(tmp_path),
        hidden_paths=[source],
        parameters={"NAMESPACE": NAMESPACE, "BUSYBOX_IMAGE": BUSYBOX_IMAGE,
                    "SOURCE": source, "OUTSIDE": str(tmp_path),
                    "OTHER_GATEKEEPER": other_gatekeeper}, **traits)
    nb, _ = execute.preprocess(nb, _resources(scratch))
    probe = next(c for c in nb.cells if c.id == "probe")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    return json.loads(probe.outputs[0].text), Outcome.load(tmp_path / f"{NOTEBOOK}.json")


def test_the_kernel_talks_to_its_gatekeeper(tmp_path, no_leftovers):
    found, outcome = _execute(tmp_path)
    assert "course-gatekeeper-" in found["docker_host"]
    assert "gatekeeper refused (no-privileged)" in found["privileged"]
    assert any("no-privileged" in refusal for refusal in outcome.refused)


@pytest.mark.skipif(not confinement.available(), reason="confinement needs root on Linux")
def test_a_confined_kernel_cannot_reach_the_host(tmp_path, no_leftovers):
    found, _ = _execute(tmp_path)
    assert found["uid"] >= confinement.FIRST_UID
    assert found["daemon_socket"] in ("PermissionError", "FileNotFoundError")
    assert found["solutions"] == "PermissionError"
    assert found["write_outside_scratch"] in ("PermissionError", "OSError")
    assert found["signal_init"] == "PermissionError"
    assert found["other_gatekeeper"] == "PermissionError"


def test_without_confinement_the_kernel_is_the_graders_user(tmp_path, no_leftovers):
    """The comparison that shows the confined test above can fail."""
    found, _ = _execute(tmp_path, confine=False)
    assert found["uid"] == os.getuid()
    assert found["solutions"] == "allowed"
    assert found["other_gatekeeper"] == ("allowed" if os.getuid() == 0 else "PermissionError")


def test_without_the_gatekeeper_the_kernel_uses_the_daemon_itself(tmp_path, no_leftovers):
    """--no-gatekeeper (trusted notebooks): no proxy and no confinement, or it could not connect."""
    found, outcome = _execute(tmp_path, gatekeeper=False)
    assert "course-gatekeeper-" not in found["docker_host"]
    assert found["uid"] == os.getuid()
    assert "gatekeeper refused" not in found["privileged"]
    assert outcome.refused == []


class _KernelWithoutDocker(ExecuteParameterized):
    """A kernel whose DOCKER_HOST leads nowhere, as when a sandbox is set up wrongly."""

    def start_new_kernel(self, **kwargs):
        kwargs["env"] = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
        return super().start_new_kernel(**kwargs)


def _execute_without_docker(tmp_path, nb):
    execute = _KernelWithoutDocker(
        timeout=30, namespace=NAMESPACE, gatekeeper=False, outcome_folder=str(tmp_path),
        parameters={"NAMESPACE": NAMESPACE, "BUSYBOX_IMAGE": BUSYBOX_IMAGE})
    nb, _ = execute.preprocess(nb, _resources(tmp_path))
    return nb, Outcome.load(tmp_path / f"{NOTEBOOK}.json")


def test_a_course_cell_that_cannot_reach_docker_is_an_infrastructure_error(tmp_path,
                                                                           no_leftovers):
    """Not a zero for every test: the submission is retried, then reported."""
    nb, outcome = _execute_without_docker(tmp_path, b.mini_source())
    assert outcome.status.value == "infrastructure error"
    assert "could not reach Docker in course cell setup" in outcome.detail
    tests = next(c for c in nb.cells if c.id == "double-tests")
    assert tests.outputs[0].ename == "NotRun"


def test_student_code_that_breaks_the_connection_is_the_students_doing(tmp_path, no_leftovers):
    nb = b.mini_source()
    setup = next(c for c in nb.cells if c.id == "setup")
    nb.cells.remove(setup)
    nb.cells.insert(nb.cells.index(next(c for c in nb.cells if c.id == "double-tests")) + 1,
                    setup)
    _, outcome = _execute_without_docker(tmp_path, nb)
    assert outcome.status.value == "graded"


@pytest.mark.skipif(not confinement.available(), reason="confinement needs root on Linux")
def test_a_closed_folder_exposed_to_the_confined_user_opens_for_it(tmp_path):
    """A checkout in a 0700 folder (mktemp -d) must still give the kernel the course's code."""
    import subprocess
    import sys

    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "lab.txt").write_text("readable")
    (closed / "link").symlink_to("lab.txt")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    confined = confinement.Confinement("nsclosed0001", scratch)
    confined.prepare()
    command = confined.wrap([sys.executable, "-c",
                             f"print(open({str(closed / 'link')!r}).read())"])
    command.insert(command.index("--"), f"--expose={closed}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "readable", result.stderr
    assert oct(closed.stat().st_mode & 0o777) == "0o700"  # the host's folder is unchanged
