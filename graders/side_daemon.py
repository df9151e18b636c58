"""A second Docker daemon beside the main one: its own socket, data, containerd and network.

Grading past one machine (a Dask worker per daemon) and grading on the other engine both need a
daemon that shares nothing with the one a user already runs. A side daemon gets, all named
after it: a socket ``/run/course-<name>.sock``, a data root, a short exec root (containerd's
sockets live there and Unix socket paths are short), a pid file, a containerd of its own, a
daemon.json of its own (the system's may ask for another image store), and a network namespace
of its own, as a machine of its own would have: its own ``docker0``, its own iptables, its own
loopback. So it runs with Docker's defaults, inter-container rules and published ports included,
and touches nothing of the host's network (two dockerds in one network namespace fight over the
iptables chains and the ``docker0`` link).

The socket is a file, so any process reaches the daemon; what connects to its containers'
published ports (``127.0.0.1:PORT``) must run inside its namespace: ``daemon.inside(argv)``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import zlib
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

from .errors import CourseError

Step = Callable[[str], None]

class SideDaemonError(CourseError):
    """A side daemon could not be started or stopped cleanly."""

    remedy = "A side daemon needs Linux, root, dockerd, containerd, iptables, ip and nsenter."


class SideDaemon:
    """One extra dockerd; ``start``/``stop``, or ``with SideDaemon(...) as daemon``.

    ``bin_dir`` holds the dockerd (and maybe containerd) to run instead of the ones on PATH, as
    engines.provide_engine unpacks them; ``features`` go into its daemon.json (e.g. the
    containerd image store).
    """

    def __init__(self, name: str, bin_dir: Path | None = None, features: dict | None = None,
                 log_dir: Path | None = None) -> None:
        if not name.replace("-", "").isalnum() or len(name) > 24:
            raise SideDaemonError(f"Bad side daemon name {name!r}: letters, digits and '-' only.")
        self.name = name
        self.bin_dir = bin_dir
        self.features = features or {}
        self.socket = Path(f"/run/course-{name}.sock")
        self.data_root = Path(f"/var/lib/course-{name}")
        self.exec_root = Path(f"/run/cd-{zlib.crc32(name.encode()):08x}")
        self.pid_file = Path(f"/run/course-{name}.pid")
        self.netns = f"course-{name}"
        self.log_dir = log_dir or self.data_root / "logs"
        self._dockerd: subprocess.Popen | None = None
        self._containerd: subprocess.Popen | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def inside(self, argv: list[str]) -> list[str]:
        """``argv`` run in the daemon's network namespace (the host's filesystem, as is)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *argv]

    def _binary(self, name: str) -> str:
        if self.bin_dir and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        found = shutil.which(name)
        if not found:
            raise SideDaemonError(f"{name} is not installed.")
        return found

    def _env(self) -> dict[str, str]:
        path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        return {**os.environ, "PATH": f"{self.bin_dir}:{path}" if self.bin_dir else path}

    # --- start ----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> SideDaemon:
        """Start containerd, then dockerd, and wait until the daemon answers."""
        if os.geteuid() != 0:
            raise SideDaemonError("A side daemon needs root.")
        self.stop(remove_data=False)  # whatever a crashed run of the same name left
        for folder in (self.data_root, self.exec_root, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            _run(["ip", "netns", "add", self.netns])
            _run(self.inside(["ip", "link", "set", "lo", "up"]))
            deadline = time.monotonic() + timeout
            self._containerd = self._spawn(self._containerd_argv(), "containerd.log")
            self._wait(lambda: (self.exec_root / "containerd.sock").exists(), deadline,
                       "containerd", self._containerd, "containerd.log")
            self._dockerd = self._spawn(self._dockerd_argv(), "dockerd.log")
            self._wait(self._answers, deadline, "dockerd", self._dockerd, "dockerd.log")
        except BaseException:
            self.stop(remove_data=False)
            raise
        return self

    def _containerd_argv(self) -> list[str]:
        config = self.exec_root / "containerd.toml"
        config.write_text(
            f'version = 2\nroot = "{self.data_root / "containerd"}"\n'
            f'state = "{self.exec_root / "containerd"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.exec_root / "containerd.sock"}"\n'
            f'[ttrpc]\n  address = "{self.exec_root / "containerd.sock.ttrpc"}"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n')
        return [self._binary("containerd"), "--config", str(config)]

    def _dockerd_argv(self) -> list[str]:
        config = self.exec_root / "daemon.json"
        config.write_text(json.dumps({"features": self.features} if self.features else {}))
        argv = [
            self._binary("dockerd"), "--config-file", str(config),
            "--host", self.docker_host, "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root), "--pidfile", str(self.pid_file),
            "--containerd", str(self.exec_root / "containerd.sock"),
        ]
        if self.bin_dir and (self.bin_dir / "docker-proxy").exists():
            argv += ["--userland-proxy-path", str(self.bin_dir / "docker-proxy")]
        return argv

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen:
        with open(self.log_dir / log_name, "ab") as log:
            return subprocess.Popen(self.inside(argv), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True, env=self._env())

    def _answers(self) -> bool:
        try:
            with closing(docker.DockerClient(base_url=self.docker_host, timeout=3)) as client:
                return client.ping()
        except (DockerException, RequestException, OSError):
            return False

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str,
              process: subprocess.Popen, log_name: str) -> None:
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join((self.log_dir / log_name).read_text(errors="replace")
                                 .splitlines()[-15:])
                state = "exited" if process.poll() is not None else "did not answer in time"
                raise SideDaemonError(f"The side daemon's {what} {state}. Last lines of "
                                      f"{self.log_dir / log_name}:\n{tail}")
            time.sleep(0.2)

    # --- provision and stop ---------------------------------------------------------------

    def client(self, timeout: float = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, version="auto", timeout=timeout)

    def provision(self, on_step: Step | None = None) -> None:
        """Give the daemon the course images (built offline from Debian's binaries)."""
        from .images import ensure_images

        with closing(self.client()) as client:
            ensure_images(client, on_step=on_step)

    def stop(self, remove_data: bool = True) -> None:
        """Remove its containers, stop dockerd and containerd, delete its network namespace;
        with ``remove_data`` its images and volumes go too. Safe to call twice."""
        if self._answers():
            try:
                with closing(self.client(timeout=30)) as client:
                    for container in client.api.containers(all=True):
                        client.api.remove_container(container["Id"], force=True, v=True)
            except (DockerException, RequestException):
                pass  # stopping dockerd stops its containers anyway
        for process in (self._dockerd, self._containerd):
            if process is not None:
                _terminate(process.pid, process)
        self._dockerd = self._containerd = None
        self._stray_processes()
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, timeout=10)
        self.socket.unlink(missing_ok=True)
        _unmount_under(self.exec_root)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        if remove_data:
            _unmount_under(self.data_root)
            shutil.rmtree(self.data_root, ignore_errors=True)

    def _stray_processes(self) -> None:
        """Stop what still runs in the daemon's network namespace: a dockerd or containerd of a
        crashed run of this name, a shim whose daemon is gone."""
        listed = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True,
                                text=True, timeout=10)
        for pid in listed.stdout.split() if listed.returncode == 0 else []:
            _terminate(int(pid))

    def __enter__(self) -> SideDaemon:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise SideDaemonError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


def _terminate(pid: int, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """SIGTERM (dockerd then stops its containers), SIGKILL after ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def ended() -> bool:
        if process is not None:
            return process.poll() is not None
        return not Path(f"/proc/{pid}").exists()

    deadline = time.monotonic() + timeout
    while not ended():
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if process is not None:
                process.wait(timeout=10)
            return
        time.sleep(0.1)


def _unmount_under(folder: Path) -> None:
    """Lazily unmount whatever a killed daemon left mounted below ``folder``."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(folder) + "/"
    points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=10)
