"""The gatekeeper's rules that need no daemon: what a container may ask of the host.

Each check raises ``Refused`` naming the rule, so the learner reads in the notebook why the
call failed. The checks read bodies already decoded by ``fields`` (one spelling per field, no
duplicates), so a field is judged under the name the daemon will use. Rules that depend on who
owns an object live in ``policy``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

SHARED_MODES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
#: Log drivers that write only to the daemon's own disk, bounded by rotation (or nowhere).
LOG_DRIVERS = ("json-file", "local", "none")
DEFAULT_LOG_SIZE = "10m"
MAX_LOG_BYTES = 10 * 2**20
MAX_LOG_FILES = 5
#: Fields of HostConfig that give the host away, or reach past the container: refused
#: unless left at their zero value, with the rule that names why.
HOST_POWERS = {
    "Privileged": ("no-privileged", "privileged containers are not allowed"),
    "CapAdd": ("no-added-capabilities", "adding capabilities is not allowed"),
    "Devices": ("no-devices", "access to host devices is not allowed"),
    "DeviceRequests": ("no-devices", "access to host devices is not allowed"),
    "DeviceCgroupRules": ("no-devices", "access to host devices is not allowed"),
    "CgroupParent": ("no-cgroup-escape", "choosing the container's cgroup is not allowed"),
    "Cgroup": ("no-cgroup-escape", "choosing the container's cgroup is not allowed"),
    "MaskedPaths": ("no-unconfined", "setting MaskedPaths would unmask the host's /proc files"),
    "ReadonlyPaths": ("no-unconfined",
                      "setting ReadonlyPaths would make the host's /proc files writable"),
    "Sysctls": ("no-unconfined", "kernel parameters (sysctls) are not allowed"),
    "StorageOpt": ("no-unconfined", "storage driver options are not allowed"),
    "Annotations": ("no-unconfined", "runtime annotations are not allowed"),
    "Ulimits": ("resource-ceiling", "ulimits are not allowed (limits are the gatekeeper's)"),
    "OomKillDisable": ("resource-ceiling", "disabling the OOM killer is not allowed"),
    "CpuRealtimePeriod": ("resource-ceiling", "real-time CPU scheduling is not allowed"),
    "CpuRealtimeRuntime": ("resource-ceiling", "real-time CPU scheduling is not allowed"),
    "KernelMemory": ("resource-ceiling", "kernel memory limits are not allowed"),
    "KernelMemoryTCP": ("resource-ceiling", "kernel memory limits are not allowed"),
    "BlkioWeightDevice": ("no-devices", "per-device I/O settings are not allowed"),
    "BlkioDeviceReadBps": ("no-devices", "per-device I/O settings are not allowed"),
    "BlkioDeviceWriteBps": ("no-devices", "per-device I/O settings are not allowed"),
    "BlkioDeviceReadIOps": ("no-devices", "per-device I/O settings are not allowed"),
    "BlkioDeviceWriteIOps": ("no-devices", "per-device I/O settings are not allowed"),
    "CpuCount": ("no-runtime", "Windows-only settings are not allowed"),
    "CpuPercent": ("no-runtime", "Windows-only settings are not allowed"),
    "IOMaximumIOps": ("no-runtime", "Windows-only settings are not allowed"),
    "IOMaximumBandwidth": ("no-runtime", "Windows-only settings are not allowed"),
}


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
    max_volumes: int = 20
    max_networks: int = 10
    max_images: int = 40
    #: Bytes the submission's images, containers' writable layers and volumes may hold.
    max_disk: int = 2 * 2**30
    memory: int = 256 * 2**20
    memory_ceiling: int = 1024 * 2**20
    nano_cpus: int = 1_000_000_000
    nano_cpus_ceiling: int = 2_000_000_000
    pids: int = 256
    pids_ceiling: int = 1024
    #: What all of a submission's containers and build steps may use together.
    total_memory: int = 2 * 2**30
    total_pids: int = 2048


def _set(value) -> bool:
    """Whether a decoded field holds anything: Go reads a zero value as not set."""
    return value not in (None, False, 0, "", [], {})


def check_privileges(host: dict) -> None:
    """Nothing that gives a container the host: privileges, devices, host namespaces."""
    for name, (rule, message) in HOST_POWERS.items():
        # An empty list of masked paths is not "unset": the daemon then masks nothing.
        given = name in host if name.endswith("Paths") else _set(host.get(name))
        if given:
            if name == "CapAdd":
                message = f"adding capabilities ({', '.join(host[name])}) is not allowed"
            raise Refused(rule, message)
    if (host.get("NetworkMode") or "") == "host":
        raise Refused("no-host-namespaces", "the host's network (--network host) is not allowed")
    for mode in SHARED_MODES:
        if (host.get(mode) or "") == "host":
            raise Refused("no-host-namespaces", f"{mode}=host shares the host's namespace")
    for option in host.get("SecurityOpt") or []:
        check_security_option(option)
    if host.get("Runtime") not in (None, "", "runc"):
        raise Refused("no-runtime", f"runtime {host['Runtime']!r} is not allowed")
    if host.get("Isolation") not in (None, "", "default"):
        raise Refused("no-runtime", f"isolation {host['Isolation']!r} is not allowed")
    if host.get("VolumeDriver") not in (None, "", "local"):
        raise Refused("plain-volumes", f"volume driver {host['VolumeDriver']!r} is not allowed")
    if (host.get("OomScoreAdj") or 0) < 0:
        raise Refused("resource-ceiling", "a negative OOM score would have the host's own "
                                          "processes killed first")


def check_security_option(option: str) -> None:
    """Only options that confine further: no-new-privileges, and the default profiles."""
    key, _, value = option.replace(":", "=", 1).partition("=")
    if key == "no-new-privileges" and value in ("", "true"):
        return
    if "unconfined" in option or (key == "label" and value == "disable"):
        raise Refused("no-unconfined", f"security option {option!r} removes confinement")
    if key == "seccomp":
        raise Refused("no-unconfined", "a custom seccomp profile (which can allow every "
                                       "system call) is not allowed")
    raise Refused("no-unconfined", f"security option {option!r} is not allowed "
                                   "(no-new-privileges is)")


def _ceiling(value: int, ceiling: int, what: str, unit: str = "bytes") -> None:
    if value > ceiling:
        raise Refused("resource-ceiling", f"{what} {value} {unit} is above the ceiling of "
                                          f"{ceiling}")


def _cpus(host: dict) -> int:
    """The CPU limit asked for, in billionths of a CPU (NanoCpus, or quota over period)."""
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    if quota > 0:
        return quota * 1_000_000_000 // (period or 100_000)
    return host.get("NanoCpus") or 0


def check_resources(host: dict, limits: Limits, updating: bool = False) -> None:
    """Refuse what would lift a limit: values above the ceilings, and "unlimited" spellings."""
    memory, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
    for name in ("Memory", "NanoCpus", "CpuQuota", "CpuPeriod", "CpuShares", "ShmSize",
                 "MemoryReservation", "PidsLimit"):
        if (host.get(name) or 0) < 0:
            raise Refused("resource-ceiling", f"{name}={host[name]} would remove a limit")
    if swap < -1 or (swap == -1 and updating):
        raise Refused("resource-ceiling", f"MemorySwap={swap} would remove the swap limit")
    _ceiling(memory, limits.memory_ceiling, "memory")
    _ceiling(host.get("ShmSize") or 0, limits.memory_ceiling, "shm size")
    _ceiling(host.get("MemoryReservation") or 0, limits.memory_ceiling, "memory reservation")
    if swap > 0:
        _ceiling(swap, 2 * limits.memory_ceiling, "memory plus swap")
    cpus = _cpus(host)
    if cpus > limits.nano_cpus_ceiling:
        raise Refused("resource-ceiling", f"{cpus / 1e9:g} CPUs is above the ceiling of "
                                          f"{limits.nano_cpus_ceiling / 1e9:g}")
    if "PidsLimit" in host:
        if updating and host["PidsLimit"] <= 0:
            raise Refused("resource-ceiling", f"PidsLimit={host['PidsLimit']} would remove "
                                              "the pids limit")
        _ceiling(host["PidsLimit"], limits.pids_ceiling, "pids limit", "processes")


def apply_limits(host: dict, limits: Limits) -> dict:
    """Fill unset memory, CPU and pids limits and a bounded log; refuse values past ceilings."""
    check_resources(host, limits)
    if not host.get("Memory"):
        host["Memory"] = limits.memory
        if not host.get("MemorySwap"):
            # Room for a later `docker update --memory` up to the ceiling.
            host["MemorySwap"] = 2 * limits.memory_ceiling
    elif (host.get("MemorySwap") or 0) < 0:
        host["MemorySwap"] = 2 * limits.memory_ceiling
    if not _cpus(host):
        # A quota, not NanoCpus: Docker refuses to update the quota of a NanoCpus container.
        host.pop("NanoCpus", None)
        host["CpuPeriod"] = host.get("CpuPeriod") or 100_000
        host["CpuQuota"] = limits.nano_cpus * host["CpuPeriod"] // 1_000_000_000
    if not host.get("PidsLimit"):
        host["PidsLimit"] = limits.pids
    # On a cgroup v1 host the daemon's default is the host's cgroup namespace.
    host["CgroupnsMode"] = host.get("CgroupnsMode") or "private"
    host["LogConfig"] = bounded_log(host.get("LogConfig") or {})
    return host


SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.I)


def _log_bytes(text: str) -> int:
    match = SIZE.match(text.strip())
    if not match:
        raise Refused("resource-ceiling", f"log max-size {text!r} is not a size like 10m")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit.lower()]


def bounded_log(config: dict) -> dict:
    """A log that stays on the daemon's disk, rotated: a size is filled in when none is given."""
    kind = config.get("Type") or "json-file"
    if kind not in LOG_DRIVERS:
        raise Refused("bounded-logs", f"log driver {kind!r} is not allowed (json-file, local "
                                      f"and none keep logs on this host, bounded)")
    options = dict(config.get("Config") or {})
    if kind == "none":
        return {"Type": kind, "Config": {}}
    allowed = {"max-size", "max-file", "compress", "mode", "max-buffer-size", "labels", "env",
               "env-regex", "tag"}
    unknown = set(options) - allowed
    if unknown:
        raise Refused("bounded-logs", f"log option(s) {', '.join(sorted(unknown))} are not "
                                      f"allowed")
    options.setdefault("max-size", DEFAULT_LOG_SIZE)
    if _log_bytes(options["max-size"]) > MAX_LOG_BYTES:
        raise Refused("bounded-logs", f"log max-size {options['max-size']} is above 10m")
    files = options.get("max-file", "1")
    if not files.isdigit() or not 1 <= int(files) <= MAX_LOG_FILES:
        raise Refused("bounded-logs", f"log max-file {files!r} is not between 1 and "
                                      f"{MAX_LOG_FILES}")
    return {"Type": kind, "Config": options}


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


def filter_flag(values: list[str] | None, default: bool) -> bool:
    """A Docker filter's boolean, decoded as a list of terms such as ["true"]."""
    if not values:
        return default
    return values[0].lower() in ("true", "1")


def prune_filter(filters: dict[str, list[str]], now: float | None = None):
    """The image prune's ``label``, ``label!`` and ``until`` filters, as a predicate."""
    unknown = set(filters) - {"dangling", "label", "label!", "until"}
    if unknown:
        raise ValueError(f"unsupported filter {', '.join(sorted(unknown))}")
    wanted, unwanted = filters.get("label") or [], filters.get("label!") or []
    until = [_until(t, now or time.time()) for t in filters.get("until") or []]

    def choose(image: dict) -> bool:
        labels = image.get("Labels") or {}
        return (all(_has_label(labels, e) for e in wanted)
                and not any(_has_label(labels, e) for e in unwanted)
                and all(image.get("Created", 0) < limit for limit in until))
    return choose
