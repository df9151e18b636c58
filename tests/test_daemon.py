"""Finding and starting the daemon: real daemon for what claims Docker works, fakes for logic."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graders import daemon
from graders.errors import DaemonUnavailable


@pytest.fixture
def nothing_starts(monkeypatch):
    """Fail the test if anything tries to install or start a daemon."""

    def forbidden(*_args, **_kwargs):
        raise AssertionError("tried to install or start a daemon")

    monkeypatch.setattr(daemon, "_start_dockerd", forbidden)
    monkeypatch.setattr(daemon, "apt_install", forbidden)


@pytest.fixture
def local_default(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)


@pytest.mark.docker
def test_daemon_answers(local_default):
    assert daemon.daemon_answers()


@pytest.mark.docker
def test_client_negotiates_api_version(local_default):
    client = daemon.docker_client(timeout=10)
    try:
        assert client.api.api_version == client.version()["ApiVersion"]
    finally:
        client.close()


@pytest.mark.docker
def test_ensure_daemon_uses_running_daemon(local_default, nothing_starts, tmp_path):
    status = daemon.ensure_daemon(tmp_path / "dockerd.log", on_step=pytest.fail)
    assert status.how == "already running"
    assert status.via.startswith("default socket unix://")
    assert status.summary == f"already running, {status.via}"
    assert not (tmp_path / "dockerd.log").exists()


def dead_socket(tmp_path: Path) -> str:
    """A unix socket file nobody listens on: connecting is refused at once."""
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return f"unix://{path}"


@pytest.mark.parametrize("kind", ["missing", "refused"])
def test_dead_docker_host_is_named_and_nothing_starts(monkeypatch, nothing_starts, tmp_path, kind):
    host = dead_socket(tmp_path) if kind == "refused" else f"unix://{tmp_path}/none.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    began = time.monotonic()
    assert not daemon.daemon_answers()
    with pytest.raises(DaemonUnavailable) as raised:
        daemon.ensure_daemon(tmp_path / "dockerd.log", wait_seconds=5)
    assert time.monotonic() - began < 5
    assert f"DOCKER_HOST={host}" in raised.value.message
    assert "DOCKER_HOST" in raised.value.remedy
    assert not (tmp_path / "dockerd.log").exists()


def test_reasons_are_plain():
    assert daemon._reason(OSError("[Errno 111] Connection refused")) == "nothing listens there"
    assert daemon._reason(OSError("odd")) == "odd"


def fake_down_daemon(monkeypatch, message: str = "No Docker daemon answers: nothing.") -> None:
    monkeypatch.setattr(daemon, "_probe", lambda timeout: DaemonUnavailable(message))


def test_not_root_is_told_what_to_run(monkeypatch, local_default, nothing_starts, tmp_path):
    fake_down_daemon(monkeypatch)
    monkeypatch.setattr(daemon.sys, "platform", "linux")
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 1000)
    for dockerd in ("/usr/sbin/dockerd", None):
        monkeypatch.setattr(daemon.shutil, "which", lambda _name, found=dockerd: found)
        with pytest.raises(DaemonUnavailable) as raised:
            daemon.ensure_daemon(tmp_path / "dockerd.log")
        remedy = raised.value.remedy
        assert "sudo" in remedy and "dockerd" in remedy
        assert ("apt-get install docker.io" in remedy) == (dockerd is None)


def test_other_platforms_are_told_docker_desktop(monkeypatch, local_default, nothing_starts,
                                                 tmp_path):
    fake_down_daemon(monkeypatch)
    monkeypatch.setattr(daemon.sys, "platform", "darwin")
    with pytest.raises(DaemonUnavailable, match="nothing") as raised:
        daemon.ensure_daemon(tmp_path / "dockerd.log")
    assert "Docker Desktop" in raised.value.remedy


def test_denied_socket_is_not_restarted(monkeypatch, local_default, nothing_starts, tmp_path):
    fake_down_daemon(monkeypatch, f"No Docker daemon answers at x: {daemon._DENIED}.")
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 0)
    with pytest.raises(DaemonUnavailable, match="permission denied"):
        daemon.ensure_daemon(tmp_path / "dockerd.log")


def test_stale_pid_file_is_removed(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    for pid in (finished.stdout.strip(), str(os.getpid()), "garbage"):
        pid_file = tmp_path / "docker.pid"
        pid_file.write_text(pid)
        running, note = daemon.running_dockerd(pid_file)
        assert running is None
        assert note and "stale" in note
        assert not pid_file.exists()
    assert daemon.running_dockerd(tmp_path / "absent.pid") == (None, None)


@pytest.mark.docker
def test_live_pid_file_is_kept(tmp_path):
    if not daemon.PID_FILE.exists():
        pytest.skip("this daemon writes no pid file")
    pid = int(daemon.PID_FILE.read_text())
    copy = tmp_path / "docker.pid"
    copy.write_text(str(pid))
    assert daemon.running_dockerd(copy) == (pid, None)
    assert copy.exists()


@pytest.fixture
def fake_dockerd(monkeypatch, local_default, tmp_path):
    """Put a fake `dockerd` script first on PATH as root on Linux with no daemon answering.

    Yields a function writing the script's body; processes it started are ended afterwards.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(daemon.sys, "platform", "linux")
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 0)
    monkeypatch.setattr(daemon, "running_dockerd", lambda: (None, None))
    monkeypatch.setattr(daemon, "apt_install", pytest.fail)
    fake_down_daemon(monkeypatch)
    started: list[int] = []
    real_start = daemon._start_dockerd

    def start(log_path):
        process = real_start(log_path)
        started.append(process.pid)
        return process

    monkeypatch.setattr(daemon, "_start_dockerd", start)

    def write(body: str) -> None:
        script = bin_dir / "dockerd"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)

    yield write
    for pid in started:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_dockerd_that_exits_is_reported_with_its_log(fake_dockerd, tmp_path):
    fake_dockerd('echo "failed to start daemon: something broke"; exit 1')
    log = tmp_path / "dockerd.log"
    with pytest.raises(DaemonUnavailable, match="exited") as raised:
        daemon.ensure_daemon(log, wait_seconds=10)
    assert "something broke" in raised.value.message
    assert str(log) in raised.value.message


def test_dockerd_that_never_answers_times_out(fake_dockerd, tmp_path):
    fake_dockerd('echo "starting up"; exec sleep 30')
    began = time.monotonic()
    with pytest.raises(DaemonUnavailable, match="did not answer") as raised:
        daemon.ensure_daemon(tmp_path / "dockerd.log", wait_seconds=1)
    assert time.monotonic() - began < 5
    assert "starting up" in raised.value.message


def test_started_dockerd_runs_in_its_own_session(fake_dockerd, monkeypatch, tmp_path):
    fake_dockerd("exec sleep 30")
    answers = iter([DaemonUnavailable("down"), DaemonUnavailable("down"), None, None])
    monkeypatch.setattr(daemon, "_probe", lambda timeout: next(answers))
    steps: list[str] = []
    status = daemon.ensure_daemon(tmp_path / "dockerd.log", on_step=steps.append)
    assert status.how == "started" and status.pid
    assert status.summary.startswith(f"started (pid {status.pid}, log {tmp_path}")
    assert os.getsid(status.pid) != os.getsid(0)
    assert any("Started dockerd" in step for step in steps)
