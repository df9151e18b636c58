"""A solution that reaches the right answer without the call its lesson teaches earns nothing
for that exercise, and everything else it solved still counts.

Each case puts one such solution into the instructor's (fully solved) notebook, without its
worked examples (builders.exercises_only: they cost container starts and are not what is
judged), and grades it.
The judge decides from evidence the kernel cannot rewrite: the gatekeeper's journal of the
submission's requests (attach, exec, login) or the registry's own log (the catalogue).
"""

from __future__ import annotations

import json
import shutil

import builders as b
import nbformat
import pytest
from conftest import ROOT

from graders.grading import GradingOptions, grade_assignments
from graders.pool import LocalPool, default_workers

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: case (the assignment, or assignment/exercise for a second case in one notebook): (solution
#: cell, the grade cell it answers, a solution that avoids the lesson).
DETOURS = {
    "03-start-stop": ("attach-solution", "attach-tests", '''
def read_next_lines(client, name, count, timeout):
    """The next lines, read from the log as it grows instead of by attaching."""
    stream = client.containers.get(name).logs(stream=True, follow=True, tail=0)
    timer = threading.Timer(timeout, stream.close)
    timer.start()
    received = b""
    try:
        for chunk in stream:
            received += chunk
            if received.count(b"\\n") >= count:
                break
    finally:
        timer.cancel()
        stream.close()
    return received.decode().splitlines()[:count]
'''),
    "12-registries": ("login-solution", "login-tests", '''
import base64
import urllib.error
import urllib.request

import docker


def log_in(client, registry, username, password):
    """Ask the registry itself whether the password is right, and say the login succeeded."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(f"http://{registry}/v2/",
                                     headers={"Authorization": f"Basic {token}"})
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as error:
        raise docker.errors.APIError(f"the registry answered {error.code}") from None
    return {"Status": "Login Succeeded", "IdentityToken": ""}
'''),
    "13-local-registry": ("catalog-solution", "catalog-tests", '''
import json
import urllib.request


def list_repositories(registry, page_size):
    """Every name in one request, ignoring the pages."""
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog?n=1000", timeout=10) as answer:
        return json.load(answer)["repositories"]
'''),
    "16-links-networks": ("link-env-solution", "link-env-tests", '''
def linked_address(client, name, alias, port):
    """The target's address from the daemon's records, not from the link's variables."""
    for link in client.containers.get(name).attrs["HostConfig"]["Links"]:
        target, _, linked_as = link.partition(":")
        if linked_as.rsplit("/", 1)[-1] == alias:
            found = client.containers.get(target.lstrip("/"))
            return found.attrs["NetworkSettings"]["IPAddress"], port
    raise KeyError(alias)
'''),
    "12-registries/pull": ("pull-solution", "pull-tests", '''
def pull_image(client, repository, tag, username, password):
    """Log in, then pull: the right image, and a client that keeps the password."""
    client.login(username=username, password=password, registry=repository.split("/")[0])
    return client.images.pull(repository, tag=tag)
'''),
}


def _assignment(case: str) -> str:
    return case.split("/")[0]


def _student(case: str) -> str:
    return "detour-" + case.replace("/", "-")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("detours")
    for case, (solution_id, _tests_id, detour) in DETOURS.items():
        assignment = _assignment(case)
        source = course / "source" / assignment / f"{assignment}.ipynb"
        if not source.exists():
            shutil.copytree(ROOT / "source" / assignment, course / "source" / assignment)
            b.write(b.exercises_only(nbformat.read(str(source), 4)), source)
        notebook = nbformat.read(str(source), 4)
        [cell] = [c for c in notebook.cells if c.get("id") == solution_id]
        cell.source = detour.strip() + "\n"
        target = course / "submitted" / _student(case) / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(notebook))
    pool = LocalPool(default_workers())
    try:
        batches = grade_assignments(course, sorted({_assignment(case) for case in DETOURS}),
                                    GradingOptions(feedback=False), pool=pool)
    finally:
        pool.close()
    return {(batch.assignment, result.student): result
            for batch in batches for result in batch.results}


@pytest.mark.parametrize("case", sorted(DETOURS))
def test_a_detour_loses_only_its_exercise(graded, case):
    outcome = graded[(_assignment(case), _student(case))]
    tests_id = DETOURS[case][1]
    assert outcome.status.value == "graded", outcome.detail
    detoured = outcome.verdicts[tests_id]
    assert detoured["score"] == 0, f"{tests_id} accepted a solution that avoids the lesson's call"
    others = {grade_id: v for grade_id, v in outcome.verdicts.items() if grade_id != tests_id}
    assert others and all(v["score"] == v["max_score"] for v in others.values()), others
    assert outcome.score == outcome.max_score - detoured["max_score"]
