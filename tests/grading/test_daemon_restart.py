"""A Docker daemon restarted in the middle of a batch: every submission ends graded or reported.

The test runs its own dockerd (own socket, data root and bridge, no iptables rules) so that
restarting it disturbs nothing else on the machine. It must not use `--bridge=none`: a dockerd
started that way deletes the host's `docker0`, breaking the machine's main daemon.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import builders as b
import docker
import pytest

from graders.images import ensure_images
from graders.release import generate_release

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class PrivateDaemon:
    """A dockerd of the test's own, which can be stopped and started again."""

    def __init__(self, home: Path, bridge: str) -> None:
        self.home = home
        self.bridge = bridge
        self.socket = home / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = open(home / "dockerd.log", "ab")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("dockerd"), "--host", self.host, "--data-root", str(self.home / "data"),
             "--exec-root", str(self.home / "exec"), "--pidfile", str(self.home / "docker.pid"),
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false"],
            stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                docker.DockerClient(base_url=self.host, timeout=5).ping()
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError("the private dockerd did not answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def private_daemon():
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("ip"):
        pytest.skip("needs root, dockerd and ip to run a private daemon")
    home = Path(tempfile.mkdtemp(prefix="course-dockerd-", dir="/var/tmp"))
    bridge = f"brcourse{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "10.254.254.1/24", "dev", bridge], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    daemon = PrivateDaemon(home, bridge)
    try:
        daemon.start()
        client = docker.DockerClient(base_url=daemon.host)
        ensure_images(client)
        client.close()
        yield daemon
    finally:
        daemon.stop()
        subprocess.run(["umount", "-R", str(home / "exec")], capture_output=True)
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_a_daemon_restart_mid_batch_ends_with_every_submission_graded_or_reported(
        tmp_path, private_daemon):
    root = b.course_folder(tmp_path / "course", b.mini_source())
    generate_release(root, root / "release", assignments=[b.MINI])
    slow = b.with_cell_source(b.solved(root), "double-solution",
                              "import time\ntime.sleep(3)\ndef double(x):\n    return 2 * x")
    students = [f"student{i}" for i in range(4)]
    for student in students:
        b.submit(root, student, slow)
    env = {**os.environ, "DOCKER_HOST": private_daemon.host}
    course = Path(sys.executable).parent / "course"
    run = subprocess.Popen([str(course), "grade", b.MINI, "--course-dir", str(root),
                            "--workers", "1", "--no-feedback", "--cell-timeout", "20"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outcomes = root / "grading" / b.MINI
    deadline = time.monotonic() + 180
    while not list(outcomes.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # the next submission is now running
    private_daemon.stop()
    time.sleep(2)
    private_daemon.start()
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    with (root / "exports" / f"{b.MINI}-status.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["student_id"] for r in rows) == students
    for row in rows:
        assert row["status"] in {"graded", "infrastructure error"}, row
        if row["status"] == "graded":
            assert float(row["score"]) == 3.0, row
        else:
            assert row["detail"], row
    client = docker.DockerClient(base_url=private_daemon.host)
    assert client.containers.list(all=True) == []
    client.close()
