"""The doctor against the real daemon, a dead DOCKER_HOST, and a PATH without the venv."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from graders import doctor
from graders.daemon import docker_client
from graders.doctor import diagnose
from graders.engines import image_store
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
                     "Storage driver", "Image store", "cgroups", "Image busybox:1.35.0",
                     "Image registry:2",
                     "Python package nbgrader", "alembic beside Python"):
        assert expected in names
    assert "default socket" in checks[0].detail
    by_name = {check.name: check for check in checks}
    client = docker_client()
    try:
        version, info = client.version(), client.info()
    finally:
        client.close()
    assert f"Engine {version['Version']} (API {version['ApiVersion']})" in \
        by_name["Docker server version"].detail
    assert by_name["Image store"].detail.split()[0] == image_store(info)
    assert info["Driver"] in by_name["Image store"].detail


def test_dead_docker_host_fails_fast_with_remedy(monkeypatch, venv_on_path, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    began = time.monotonic()
    checks = diagnose(timeout=2)
    assert time.monotonic() - began < 5
    daemon_check = checks[0]
    assert daemon_check.name == "Docker daemon" and not daemon_check.ok
    assert "DOCKER_HOST" in daemon_check.detail and "DOCKER_HOST" in daemon_check.remedy
    assert all(check.ok for check in checks[1:])


def test_image_store_read_from_the_info():
    classic = doctor._image_store({"Driver": "overlay2", "DriverStatus": [
        ["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]})
    assert classic.ok and classic.detail == "classic (graph driver overlay2)"
    containerd = doctor._image_store({"Driver": "overlayfs", "DriverStatus": [
        ["driver-type", "io.containerd.snapshotter.v1"]]})
    assert containerd.ok and containerd.detail == "containerd (snapshotter overlayfs)"
    assert doctor._image_store({}).detail == "classic (graph driver ?)"


def test_server_version_names_engine_api_and_containerd():
    check = doctor._server_version({
        "Version": "26.1.5+dfsg1", "ApiVersion": "1.45", "Os": "linux", "Arch": "amd64",
        "Components": [{"Name": "containerd", "Version": "1.6.20~ds1"}]})
    assert check.ok
    assert check.detail == ("Engine 26.1.5+dfsg1 (API 1.45) on linux/amd64, containerd "
                            "1.6.20~ds1")
    newer = doctor._server_version({"Version": "27.3.1", "ApiVersion": "1.47"})
    assert newer.ok and "tested on Engine 20.10 and 26.1" in newer.detail
    old = doctor._server_version({"Version": "19.03.15", "ApiVersion": "1.40"})
    assert not old.ok and "20.10" in old.remedy
