"""The doctor against the real daemon, a dead DOCKER_HOST, and a PATH without the venv."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from graders.daemon import docker_client
from graders.doctor import diagnose
from graders.images import ensure_images


@pytest.fixture
def venv_on_path(monkeypatch):
    """PATH as an activated venv has it, which is how the course is meant to be run."""
    bin_dir = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.docker
def test_all_checks_pass(monkeypatch, venv_on_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    client = docker_client()
    try:
        ensure_images(client)
    finally:
        client.close()
    checks = diagnose()
    assert [check for check in checks if not check.ok] == []
    names = [check.name for check in checks]
    for expected in ("Docker daemon", "Docker API version", "Docker server version",
                     "Storage driver", "cgroups", "Image busybox:1.35.0", "Image registry:2",
                     "Python package nbgrader", "alembic beside Python"):
        assert expected in names
    assert "default socket" in checks[0].detail


def test_dead_docker_host_fails_fast_with_remedy(monkeypatch, venv_on_path, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    began = time.monotonic()
    checks = diagnose(timeout=2)
    assert time.monotonic() - began < 5
    daemon_check = checks[0]
    assert daemon_check.name == "Docker daemon" and not daemon_check.ok
    assert "DOCKER_HOST" in daemon_check.detail and "DOCKER_HOST" in daemon_check.remedy
    assert all(check.ok for check in checks[1:])
