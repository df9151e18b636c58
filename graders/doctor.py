"""Checking, without changing anything, that this machine can run and grade the course.

Every check is bounded in time and turns its own failure into a failed ``Check``: the doctor is
what one runs when things are broken, so it must not break itself.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException
from requests.exceptions import RequestException

from .daemon import daemon_endpoint, docker_client
from .engines import ENGINES, engine_of, image_store
from .errors import CourseError, DaemonUnavailable
from .images import image_state
from .settings import COURSE_IMAGES

#: Engine releases before this lack cgroup v2 support and the API features the course uses.
MIN_SERVER_VERSION = (20, 10)
#: Packages grading imports; each must import in this interpreter.
PYTHON_PACKAGES = ("nbgrader", "papermill", "docker")


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, whether it is fine, what was seen, and what to do if not."""

    name: str
    ok: bool
    detail: str
    remedy: str = ""


def diagnose(timeout: float = 5) -> list[Check]:
    """Run every check; Docker calls each give up after ``timeout`` seconds."""
    checks = _docker_checks(timeout)
    checks += [_python_package(name) for name in PYTHON_PACKAGES]
    checks.append(_alembic())
    return checks


def _docker_checks(timeout: float) -> list[Check]:
    """The daemon, and what only a reachable daemon can tell (omitted when it is not)."""
    try:
        client = docker_client(timeout=timeout)
    except DaemonUnavailable as error:
        return [Check("Docker daemon", False, error.message, error.remedy)]
    try:
        version = client.version()
        info = client.info()
        checks = [
            Check("Docker daemon", True, f"answers via {daemon_endpoint()}"),
            _api_version(client, version),
            _server_version(version),
            _storage_driver(info),
            _image_store(info),
            _cgroups(info),
        ]
        checks += [_image(client, name) for name in COURSE_IMAGES]
    except (DockerException, RequestException, OSError, CourseError) as error:
        checks = [Check("Docker daemon", False, f"stopped answering: {error}",
                        DaemonUnavailable.remedy)]
    finally:
        client.close()
    return checks


def _api_version(client: docker.DockerClient, version: dict) -> Check:
    detail = (
        f"{client.api.api_version} (server accepts {version.get('MinAPIVersion', '?')}"
        f" to {version.get('ApiVersion', '?')})"
    )
    return Check("Docker API version", True, detail)


def _server_version(version: dict) -> Check:
    """Which engine answers: its version, API version and containerd, and whether the course
    is tested on it (ENGINES; any later one is expected to work)."""
    text = version.get("Version", "")
    numbers = tuple(int(part) for part in re.findall(r"\d+", text)[:2])
    components = {c.get("Name"): c.get("Version") for c in version.get("Components") or []}
    detail = (f"Engine {text} (API {version.get('ApiVersion', '?')}) on "
              f"{version.get('Os', '?')}/{version.get('Arch', '?')}")
    if components.get("containerd"):
        detail += f", containerd {components['containerd']}"
    if engine_of(text) not in ENGINES:
        detail += f"; the course is tested on Engine {' and '.join(ENGINES)}"
    if numbers >= MIN_SERVER_VERSION:
        return Check("Docker server version", True, detail)
    wanted = ".".join(map(str, MIN_SERVER_VERSION))
    return Check("Docker server version", False, detail, f"Upgrade Docker to {wanted} or later.")


def _storage_driver(info: dict) -> Check:
    driver = info.get("Driver", "")
    if driver == "vfs":
        # vfs works everywhere but copies every layer in full: slow and disk-hungry, not wrong.
        return Check("Storage driver", True, "vfs (works, but slow: overlay2 is usual)")
    return Check("Storage driver", bool(driver), driver or "unknown",
                 "" if driver else "Check `docker info`: the daemon reports no storage driver.")


def _image_store(info: dict) -> Check:
    """classic (the graph driver keeps images, e.g. overlay2) or containerd (its snapshotters:
    the "containerd-snapshotter" feature of Engine 24+); the course runs on both."""
    store = image_store(info)
    driver = info.get("Driver") or "?"
    detail = (f"containerd (snapshotter {driver})" if store == "containerd"
              else f"classic (graph driver {driver})")
    return Check("Image store", True, detail)


def _cgroups(info: dict) -> Check:
    detail = f"v{info.get('CgroupVersion', '?')} ({info.get('CgroupDriver', '?')} driver)"
    if info.get("MemoryLimit", True):
        return Check("cgroups", True, f"{detail}, memory limits supported")
    return Check("cgroups", False, f"{detail}, memory limits NOT supported",
                 "Enable the memory cgroup (kernel parameter cgroup_enable=memory), then reboot.")


def _image(client: docker.DockerClient, name: str) -> Check:
    state = image_state(client, name)
    if state == "present":
        short = client.images.get(name).short_id.removeprefix("sha256:")
        return Check(f"Image {name}", True, f"present ({short})")
    return Check(f"Image {name}", False, state, "Run `course images`.")


def _python_package(name: str) -> Check:
    try:
        importlib.import_module(name)
    except Exception as error:  # any import failure is itself the finding
        return Check(f"Python package {name}", False, f"{type(error).__name__}: {error}",
                     f"Install the course into this interpreter: `{sys.executable} -m pip "
                     f"install -e .` (it brings {name}).")
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = "version unknown"
    return Check(f"Python package {name}", True, version)


def _alembic() -> Check:
    """nbgrader runs `alembic` by name to create a gradebook; the course puts the one beside this
    interpreter first on PATH for its own nbgrader calls, so it only has to exist there."""
    dirs = dict.fromkeys([Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))])
    ours = next((d / "alembic" for d in dirs if (d / "alembic").exists()), None)
    if ours is None:
        return Check("alembic beside Python", False, f"no alembic beside {sys.executable}",
                     f"`{sys.executable} -m pip install alembic` (nbgrader needs it).")
    return Check("alembic beside Python", True, str(ours))


def preflight(timeout: float = 5) -> list[Check]:
    """The failing checks that stop a learner's session: no daemon, or a course image missing."""
    return [check for check in _docker_checks(timeout)
            if not check.ok and (check.name == "Docker daemon" or check.name.startswith("Image"))]
