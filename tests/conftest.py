"""Shared fixtures: a Docker client, and a guard that no test leaves Docker objects behind.

The session runs the short tests first, then the long tests that mostly wait (on kernels, time
limits, restarts), then the long gradings that keep both cores busy, and last the checks of the
course notebooks' gradings on side daemons (tests/test_course_notebooks.py,
tests/test_other_engine.py), which start in the background as soon as the tests are collected
(tests/side_gradings.py): the tests that wait leave cores idle, which the gradings fill.
"""

from __future__ import annotations

import sys
from pathlib import Path

import docker
import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent

import side_gradings  # noqa: E402  (found on the path just set)


@pytest.fixture(scope="session")
def client():
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.exit(f"No Docker daemon answers ({error}); run `make setup` first.", returncode=2)
    yield client
    client.close()


def daemon_objects(client) -> dict[str, set[str]]:
    """Every object's id, from the list endpoints alone: the high-level lists inspect each
    entry afterwards, which fails when other work removes one in between."""
    api = client.api
    return {
        "containers": {c["Id"] for c in api.containers(all=True)},
        "volumes": {v["Name"] for v in api.volumes().get("Volumes") or []},
        "networks": {n["Id"] for n in api.networks()},
        "images": {i["Id"] for i in api.images(all=True)},
    }


@pytest.fixture
def no_leftovers(client):
    """Fail the test if the daemon holds more containers, volumes, networks or images afterwards."""
    before = daemon_objects(client)
    yield
    after = daemon_objects(client)
    leaked = {kind: after[kind] - before[kind] for kind in after if after[kind] - before[kind]}
    assert not leaked, f"left on the daemon: {leaked}"


#: Long tests that keep the CPU 20-60% busy (sampled in a CI run): grading with one worker,
#: interrupted or restarted runs, neighbours that sleep.
MOSTLY_WAITING = {"test_concurrent", "test_daemon_restart", "test_dask_two_daemons",
                  "test_grade_statuses", "test_parallel", "test_shared_daemon"}


def _module(item) -> str:
    return getattr(getattr(item, "module", None), "__name__", "")


def _rank(item, slow: set[str]) -> int:
    module = _module(item)
    if module in side_gradings.READ_BY:
        return 3
    if module in slow:
        return 1 if module in MOSTLY_WAITING else 2
    return 0


def pytest_collection_modifyitems(items):
    slow = {_module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: _rank(item, slow))


def pytest_collection_finish(session):
    if not session.config.option.collectonly:
        wanted = side_gradings.wanted(session.items)
        if wanted:
            side_gradings.start_in_background(wanted)


def pytest_sessionfinish(session):
    side_gradings.stop_background()
