"""The gatekeeper's rules that need no daemon: what a container may ask of the host.

Each check raises ``Refused`` naming the rule, so the learner reads in the notebook why the
call failed. Rules that depend on who owns an object live in ``policy``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

SHARED_MODES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
DEFAULT_LOG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "1"}}


class Refused(Exception):
    """A request the gatekeeper will not pass on; the message is what the learner sees."""

    def __init__(self, rule: str, message: str, status: int = 403,
                 in_stream: bool = False) -> None:
        super().__init__(f"gatekeeper refused ({rule}): {message}")
        self.rule = rule
        self.status = status
        #: Answer as the daemon reports a failed push: an error inside a 200 progress stream.
        self.in_stream = in_stream


@dataclass(frozen=True)
class Limits:
    """Caps on what one submission may take: defaults fill unset limits, ceilings are hard."""

    max_containers: int = 20
    memory: int = 256 * 2**20
    memory_ceiling: int = 1024 * 2**20
    nano_cpus: int = 1_000_000_000
    nano_cpus_ceiling: int = 2_000_000_000
    pids: int = 256
    pids_ceiling: int = 1024


def check_privileges(host: dict) -> None:
    """Nothing that gives a container the host: privileges, devices, host namespaces."""
    if host.get("Privileged"):
        raise Refused("no-privileged", "privileged containers are not allowed")
    if host.get("CapAdd"):
        raise Refused("no-added-capabilities",
                      f"adding capabilities ({', '.join(host['CapAdd'])}) is not allowed")
    if host.get("Devices") or host.get("DeviceRequests") or host.get("DeviceCgroupRules"):
        raise Refused("no-devices", "access to host devices is not allowed")
    if (host.get("NetworkMode") or "") == "host":
        raise Refused("no-host-namespaces", "the host's network (--network host) is not allowed")
    for mode in SHARED_MODES:
        if (host.get(mode) or "") == "host":
            raise Refused("no-host-namespaces", f"{mode}=host shares the host's namespace")
    for option in host.get("SecurityOpt") or []:
        if "unconfined" in option or option.replace(":", "=") == "label=disable":
            raise Refused("no-unconfined", f"security option {option!r} removes confinement")
        if option.startswith(("seccomp=", "seccomp:")):
            raise Refused("no-unconfined", "a custom seccomp profile (which can allow every "
                                           "system call) is not allowed")
    for paths in ("MaskedPaths", "ReadonlyPaths"):
        if host.get(paths) is not None:
            raise Refused("no-unconfined", f"setting {paths} would unmask the host's /proc files")
    if host.get("CgroupParent") or host.get("Cgroup"):
        raise Refused("no-cgroup-escape", "choosing the container's cgroup is not allowed")
    if host.get("Runtime") not in (None, "", "runc"):
        raise Refused("no-runtime", f"runtime {host['Runtime']!r} is not allowed")


def check_bind_source(source: str, scratch: Path) -> None:
    """Bind mounts only from the submission's scratch folder, symlinks resolved."""
    real = os.path.realpath(source)
    root = os.path.realpath(scratch)
    if real != root and not real.startswith(root + os.sep):
        raise Refused("bind-mounts-in-scratch",
                      f"bind mount of {source!r} is outside this submission's scratch folder "
                      f"{root} (the Docker socket and the host's files stay out of reach)")


def apply_limits(host: dict, limits: Limits, updating: bool = False) -> dict:
    """Fill unset memory, CPU and pids limits; refuse values above the ceilings."""
    memory = host.get("Memory") or 0
    if memory > limits.memory_ceiling:
        raise Refused("resource-ceiling",
                      f"memory {memory} bytes is above the ceiling of {limits.memory_ceiling}")
    cpus = host.get("NanoCpus") or 0
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    if quota > 0:
        cpus = quota * 1_000_000_000 // (period or 100_000)
    if cpus > limits.nano_cpus_ceiling:
        raise Refused("resource-ceiling", f"{cpus / 1e9:g} CPUs is above the ceiling of "
                                          f"{limits.nano_cpus_ceiling / 1e9:g}")
    pids = host.get("PidsLimit") or 0
    if pids > limits.pids_ceiling or (pids < 0 and updating):
        raise Refused("resource-ceiling", f"pids limit {pids} is above the ceiling of "
                                          f"{limits.pids_ceiling}")
    if updating:
        return host
    if not memory:
        host["Memory"] = limits.memory
        if not host.get("MemorySwap"):
            # Room for a later `docker update --memory` up to the ceiling.
            host["MemorySwap"] = 2 * limits.memory_ceiling
    if not cpus and not period:
        # A quota, not NanoCpus: Docker refuses to update the quota of a NanoCpus container.
        host["CpuPeriod"] = 100_000
        host["CpuQuota"] = limits.nano_cpus * 100_000 // 1_000_000_000
    if pids <= 0:
        host["PidsLimit"] = limits.pids
    if not (host.get("LogConfig") or {}).get("Type"):
        host["LogConfig"] = DEFAULT_LOG
    return host


def registry_of(reference: str) -> str:
    """The registry host of an image reference, "" for Docker Hub."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return ""


def split_reference(reference: str) -> tuple[str, str]:
    """(repository, tag) with "latest" as the default tag, digests left in the repository."""
    if "@" in reference:
        return reference, ""
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, "latest"
    return repository, tag


def normalise(reference: str) -> str:
    repository, tag = split_reference(reference)
    repository = repository.removeprefix("docker.io/").removeprefix("library/")
    return f"{repository}:{tag}" if tag else repository


DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def filter_flag(value, default: bool) -> bool:
    """A Docker filter's boolean, which arrives as ["true"], {"true": true} or a bool."""
    if value is None:
        return default
    if isinstance(value, dict):
        value = [key for key, on in value.items() if on]
    if isinstance(value, list):
        value = value[0] if value else default
    return str(value).lower() in ("true", "1")


def _values(value) -> list[str]:
    if isinstance(value, dict):
        return [key for key, on in value.items() if on]
    return list(value or [])


def _until(text: str, now: float) -> float:
    """A prune's ``until``: a Unix timestamp or a Go duration such as 24h or 90m."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = DURATION.match(text)
    if not text or not match:
        raise ValueError(f"until={text!r} is neither a timestamp nor a duration like 24h")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return now - (hours * 3600 + minutes * 60 + seconds)


def _has_label(labels: dict, expression: str) -> bool:
    key, sep, value = expression.partition("=")
    return key in labels and (not sep or labels[key] == value)


def prune_filter(filters: dict, now: float | None = None):
    """The image prune's ``label``, ``label!`` and ``until`` filters, as a predicate."""
    unknown = set(filters) - {"dangling", "label", "label!", "until"}
    if unknown:
        raise ValueError(f"unsupported filter {', '.join(sorted(unknown))}")
    wanted, unwanted = _values(filters.get("label")), _values(filters.get("label!"))
    until = [_until(t, now or time.time()) for t in _values(filters.get("until"))]

    def choose(image: dict) -> bool:
        labels = image.get("Labels") or {}
        return (all(_has_label(labels, e) for e in wanted)
                and not any(_has_label(labels, e) for e in unwanted)
                and all(image.get("Created", 0) < limit for limit in until))
    return choose
