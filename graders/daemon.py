"""Finding a Docker daemon, and starting one on a Debian machine where we are root.

Everything here is bounded in time: a daemon that does not answer is reported, never waited on
forever. A daemon we did not choose (DOCKER_HOST, a CLI context) is never replaced by a local one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.context import ContextAPI
from docker.errors import DockerException
from requests.exceptions import RequestException

from . import engines
from .apt import apt_install
from .engines import DAEMON_JSON, EngineError, Facts, engine_of, plan_setup
from .errors import DaemonUnavailable

#: dockerd refuses to start while this file names a process, even one that is long gone.
PID_FILE = Path("/var/run/docker.pid")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
#: Set in the environment of every dockerd `course` starts, valued with its log's path: how a
#: later `course setup` knows it may stop that dockerd to change its engine or image store.
#: (/proc/<pid>/environ keeps a process's initial environment; only root reads a root one's.)
STARTED_MARK = "DOCKER_COURSE_STARTED"

Step = Callable[[str], None]

_DENIED = "permission denied on the socket"
#: Substrings of connection errors, and what they mean to a user.
_REASONS = (
    ("No such file or directory", "the socket does not exist"),
    ("Connection refused", "nothing listens there"),
    ("Permission denied", _DENIED),
    ("timed out", "no answer in time"),
    ("Name or service not known", "unknown host name"),
    ("Network is unreachable", "host unreachable"),
    ("No route to host", "host unreachable"),
)


@dataclass(frozen=True)
class DaemonStatus:
    """How the daemon was found or brought up, for the CLI to report."""

    how: str  # "already running" | "started" | "waited for"
    via: str  # e.g. "DOCKER_HOST=tcp://…" or "default socket unix:///var/run/docker.sock"
    seconds: float
    installed: bool = False  # docker.io was installed with apt-get on the way
    pid: int | None = None  # the dockerd we started or waited for
    log_path: Path | None = None
    notes: tuple[str, ...] = ()  # e.g. a stale pid file removed
    engine: str | None = None  # the engine installed, when one was asked for or installed
    replaced: str | None = None  # the engine of the dockerd stopped to make way for ``engine``

    @property
    def summary(self) -> str:
        """One line for the CLI, e.g. "started (pid 42, log logs/dockerd.log), default socket …"."""
        parts = [f"pid {self.pid}"] if self.pid else []
        if self.how == "started":
            parts.append(f"log {self.log_path}")
        if self.replaced:
            parts.append(f"replaced the Engine {self.replaced} dockerd `course` had started")
        if self.installed:
            parts.append(f"docker.io {self.engine} installed" if self.engine
                         else "docker.io installed")
        details = f" ({', '.join(parts)})" if parts else ""
        notes = "".join(f" {note}" for note in self.notes)
        return f"{self.how}{details}, {self.via}{notes}"


def daemon_endpoint() -> str:
    """Where docker-py will connect, in words: DOCKER_HOST, a CLI context, or the default socket."""
    if os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']}"
    name = os.environ.get("DOCKER_CONTEXT")
    try:
        context = ContextAPI.get_context(name)
    except DockerException:
        context = None
    if context is None:
        return f"docker context {name or 'current'!r} (not found)"
    if context.Name == "default":
        return f"default socket {context.Host or DEFAULT_SOCKET}"
    return f"docker context {context.Name!r} ({context.Host})"


def _is_default_local() -> bool:
    """True when nobody chose a daemon for us, so starting the local one is what was asked."""
    return daemon_endpoint().startswith("default socket ")


def _reason(error: BaseException) -> str:
    """A short, plain reason for a connection failure, or the error text if none matches."""
    text = str(error)
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return text


def docker_client(timeout: float = 60) -> docker.DockerClient:
    """A client for the daemon docker-py finds (DOCKER_HOST, CLI context or default socket).

    The API version is negotiated, so an older Engine still works; ``timeout`` bounds each call.
    """
    via = daemon_endpoint()
    try:
        client = docker.from_env(timeout=timeout)
    except (DockerException, RequestException, OSError) as error:
        raise _unavailable(via, _reason(error)) from error
    try:
        client.ping()
    except (DockerException, RequestException, OSError) as error:
        client.close()
        raise _unavailable(via, _reason(error)) from error
    return client


def _unavailable(via: str, reason: str) -> DaemonUnavailable:
    """The error for a daemon that does not answer, with the remedy that fits how it was sought."""
    message = f"No Docker daemon answers at {via}: {reason}."
    if via.startswith("DOCKER_HOST="):
        return DaemonUnavailable(
            message,
            "Start the daemon DOCKER_HOST points at, or unset DOCKER_HOST to use the local one.",
        )
    if via.startswith("docker context "):
        return DaemonUnavailable(
            message,
            "Start the daemon of that context (Docker Desktop?), or `docker context use default`.",
        )
    if reason == _DENIED:
        return DaemonUnavailable(
            message,
            "Docker runs but you may not use its socket: `sudo usermod -aG docker $USER`, "
            "then log in again (or run as root).",
        )
    return DaemonUnavailable(message)


def _probe(timeout: float) -> DaemonUnavailable | None:
    """None if the daemon answers within ``timeout`` seconds, else the error saying why not."""
    try:
        docker_client(timeout=timeout).close()
    except DaemonUnavailable as error:
        return error
    return None


def daemon_answers(timeout: float = 3) -> bool:
    """Whether the daemon docker-py would use answers a ping within ``timeout`` seconds."""
    return _probe(timeout) is None


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


def _log_tail(log_path: Path, count: int = 15) -> str:
    try:
        return _last_lines(log_path.read_text(errors="replace"), count)
    except OSError:
        return "(no log)"


def running_dockerd(pid_file: Path = PID_FILE) -> tuple[int | None, str | None]:
    """The pid of the running dockerd named by ``pid_file``, and a note if it was stale.

    A pid file whose process is gone, or now belongs to another program, makes dockerd refuse to
    start ("pid file found, ensure docker is not running"): such a file is removed.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                return pid, None
        except OSError:
            pass
    pid_file.unlink(missing_ok=True)
    return None, f"Removed stale {pid_file} (pid {pid} is not a running dockerd)."


def _manual_remedy() -> str:
    """What a user who is not root (or not on Linux) should do to get a daemon."""
    if sys.platform != "linux":
        return "Install Docker Desktop and start it, then run `course doctor`."
    if shutil.which("dockerd"):
        return (
            "Start it: `sudo systemctl start docker`, or without systemd "
            "`sudo sh -c 'dockerd > /var/log/dockerd.log 2>&1 &'`."
        )
    return (
        "Install and start it: `sudo apt-get install docker.io && sudo systemctl start docker` "
        "(without systemd: `sudo sh -c 'dockerd > /var/log/dockerd.log 2>&1 &'`)."
    )


def started_by_course(pid: int) -> bool:
    """Whether dockerd ``pid`` was started by `course` (it carries STARTED_MARK)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(entry.startswith(f"{STARTED_MARK}=".encode()) for entry in environ.split(b"\0"))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody reaped yet has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def stop_dockerd(pid: int, timeout: float = 60) -> None:
    """Stop dockerd ``pid`` as its init script does (SIGTERM: it stops its containers and
    containerd), waiting up to ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise EngineError(f"dockerd (pid {pid}) did not stop within {timeout:g} s.",
                              f"Stop it by hand (`kill {pid}`), then run the same command again.")
        time.sleep(0.2)


def ensure_daemon(
    log_path: Path, wait_seconds: float = 60, on_step: Step | None = None,
    engine: str = "auto", image_store: str | None = None, config_path: Path = DAEMON_JSON,
) -> DaemonStatus:
    """Use the daemon that answers, or install and start Debian's dockerd when we are root.

    Only the default local socket is ever served by a daemon we start: if DOCKER_HOST or a CLI
    context names another, starting a local one would hide the real problem.

    ``engine`` ("20.10", "26.1", "system": the Debian release's own, or "auto": whatever is
    there, else the current one) and
    ``image_store`` ("classic", "containerd", or None: as configured) say what is wanted; a
    running dockerd is stopped for them only if `course` started it (engines.plan_setup).
    ``config_path`` is the daemon.json the image store is written to.
    """
    step = on_step or (lambda _message: None)
    if engine == "system":
        engine = engines.system_engine()
    began = time.monotonic()
    via = daemon_endpoint()
    problem = _probe(timeout=3)
    as_found = engine == "auto" and image_store is None
    if problem is None and as_found:
        return DaemonStatus("already running", via, time.monotonic() - began)
    if problem is not None and (not _is_default_local() or _DENIED in problem.message):
        # Another daemon was asked for, or ours runs and only access to it is missing.
        raise problem
    if as_found:
        if sys.platform != "linux" or os.geteuid() != 0:
            raise DaemonUnavailable(problem.message, _manual_remedy())
        installed = None
        if shutil.which("dockerd") is None:
            installed = engines.CURRENT
            step(f"dockerd is not installed: installing Debian's docker.io (Engine {installed})")
            engines.install_engine(installed, step, installer=apt_install, exact=False)
        return _start_local(log_path, began + wait_seconds, step, began, via, installed,
                            config_path)

    facts, pid = _facts(problem is None, via, config_path)
    plan = plan_setup(engine, image_store, facts)
    if plan.refuse:
        raise EngineError(plan.refuse, plan.remedy)
    if problem is None and not (plan.stop or plan.install or plan.write_store):
        return DaemonStatus("already running", via, time.monotonic() - began,
                            engine=facts.running)
    if sys.platform != "linux" or os.geteuid() != 0:
        message = problem.message if problem else (
            f"Engine {plan.engine} with the {image_store or 'configured'} image store needs "
            "changes only root can make.")
        raise DaemonUnavailable(message, _manual_remedy())
    if plan.stop and pid is not None:
        step(f"Stopping dockerd (pid {pid}, Engine {facts.running}, started by `course`)")
        stop_dockerd(pid)
    if plan.install:
        step(f"Installing Debian's docker.io of Engine {plan.engine}"
             + (f" (Engine {facts.installed} is installed)" if facts.installed else ""))
        engines.install_engine(plan.engine, step, installer=apt_install,
                               exact=engine != "auto")
        found = engines.installed_engine()
        if engine != "auto" and found != plan.engine:
            raise EngineError(f"apt installed docker.io, but its dockerd is Engine {found}, "
                              f"not {plan.engine}.", "Install it by hand: `sudo apt-get install "
                              f"docker.io/{engines.SUITES[plan.engine]}`.")
    if plan.write_store and engines.set_image_store(plan.write_store, config_path):
        step(f"{config_path}: the {plan.write_store} image store")
    status = _start_local(log_path, time.monotonic() + wait_seconds, step, began, via,
                          plan.engine if plan.install else None, config_path)
    if plan.stop:
        status = DaemonStatus(**{**status.__dict__, "replaced": facts.running})
    return status


def _facts(answers: bool, via: str, config_path: Path) -> tuple[Facts, int | None]:
    """What runs (engine, image store, started by `course`?) and what is installed."""
    local = _is_default_local()
    running = store = None
    if answers:
        client = docker_client(timeout=10)
        try:
            running = engine_of(client.version().get("Version"))
            store = engines.image_store(client.info())
        finally:
            client.close()
    pid = running_dockerd()[0] if local else None
    if pid is not None and running is None:  # it runs but does not answer (yet)
        running = engines.process_engine(pid)
        store = engines.configured_store(config_path)
    facts = Facts(running=running, running_store=store, installed=engines.installed_engine(),
                  ours=pid is not None and started_by_course(pid), local=local, via=via)
    return facts, pid


def _start_local(log_path: Path, deadline: float, step: Step, began: float, via: str,
                 installed: str | None, config_path: Path) -> DaemonStatus:
    """Start the local dockerd (or wait for the one that runs) until it answers."""
    pid, note = running_dockerd()
    notes = (note,) if note else ()
    if note:
        step(note)
    process = None
    if pid is None:
        process = _start_dockerd(log_path) if config_path == DAEMON_JSON \
            else _start_dockerd(log_path, config_path)
        pid, how = process.pid, "started"
        step(f"Started dockerd (pid {pid}); its log is {log_path}")
    else:
        how = "waited for"
        step(f"dockerd (pid {pid}) runs but does not answer yet: waiting for it")
    _wait_for(pid, process, log_path, deadline)
    return DaemonStatus(
        how, via, time.monotonic() - began, installed=installed is not None, pid=pid,
        log_path=log_path, notes=notes, engine=installed,
    )


def _wait_for(
    pid: int, process: subprocess.Popen | None, log_path: Path, deadline: float
) -> None:
    """Poll until the daemon answers; raise with the log tail if dockerd dies or time runs out.

    ``process`` is None for a dockerd someone else started, whose log is not ``log_path``.
    """
    while _probe(timeout=2) is not None:
        alive = process.poll() is None if process else Path(f"/proc/{pid}").exists()
        if alive and time.monotonic() <= deadline:
            time.sleep(0.5)
            continue
        if process:
            log = f"Last lines of {log_path}:\n{_log_tail(log_path)}"
        else:
            log = "It was not started by `course`: see the log of whatever started it."
        if not alive:
            raise DaemonUnavailable(
                f"dockerd (pid {pid}) exited. {log}",
                "Fix what the log says, then run `course doctor`.",
            )
        raise DaemonUnavailable(
            f"dockerd (pid {pid}) did not answer in time. {log}",
            "It may still be starting: run `course doctor` in a minute.",
        )


def _start_dockerd(log_path: Path, config_path: Path = DAEMON_JSON) -> subprocess.Popen:
    """Start dockerd in its own session, so it outlives us and our Ctrl-C never reaches it.

    It carries STARTED_MARK, so a later `course setup` may stop it to change its engine.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = ["dockerd"] if config_path == DAEMON_JSON else \
        ["dockerd", "--config-file", str(config_path)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            env={**os.environ, STARTED_MARK: str(log_path)},
        )
