"""Shared fixtures: a Docker client, and a guard that no test leaves Docker objects behind.

The session runs the short tests first, then the long tests that mostly wait (on kernels, time
limits, restarts), then the long gradings that keep both cores busy, and last the checks of the
gradings beside the main daemon (tests/test_other_engine.py), which start in the background as
soon as the tests are collected: the tests that wait leave cores idle, which the side gradings
fill instead of competing with the busy ones or being waited for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import docker
import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent


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


SIDE_GRADINGS = "test_other_engine"
#: Long tests that keep the CPU 20-60% busy (sampled in a CI run): grading with one worker,
#: interrupted or restarted runs, neighbours that sleep.
MOSTLY_WAITING = {"test_concurrent", "test_daemon_restart", "test_dask_two_daemons",
                  "test_grade_statuses", "test_parallel", "test_shared_daemon"}


def _module(item) -> str:
    return getattr(getattr(item, "module", None), "__name__", "")


def _rank(item, slow: set[str]) -> int:
    module = _module(item)
    if module == SIDE_GRADINGS:
        return 3
    if module in slow:
        return 1 if module in MOSTLY_WAITING else 2
    return 0


def pytest_collection_modifyitems(items):
    slow = {_module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: _rank(item, slow))


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    for item in session.items:
        if _module(item) == SIDE_GRADINGS:
            item.module.start_in_background()
            return


def pytest_sessionfinish(session):
    side = sys.modules.get(SIDE_GRADINGS)
    if side is not None:
        side.stop_background()
