"""What the daemon holds, judged against the sandbox's rules; and raw bytes to a Unix socket.

The acceptance tests of the gatekeeper (``test_gatekeeper_differential.py``,
``test_gatekeeper_fuzz.py``) send hand-made bytes to a gatekeeper's socket and then look at the
*real* daemon, never trusting the gatekeeper's answer: whatever carries the attack's token is
judged here. ``container_violations`` takes the daemon's inspect of a container and returns the
broken rules as readable strings (empty when the container is one the sandbox allows).

Raw HTTP: ``request`` builds one request's bytes (any line ending, any headers, any framing),
``Conversation`` sends bytes on one connection and parses the answers as they come back, and
``exchange`` does both for a single send.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from graders.settings import BUSYBOX_IMAGE, GATEKEEPER_LABEL, NAMESPACE_LABEL

API = "/v1.41"
GIB = 2**30
MEMORY_CEILING = GIB
PIDS_CEILING = 1024
NANO_CPUS_CEILING = 2 * 10**9
SHARED_MODES = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
#: The daemon's defaults for a container that did not ask for its own (Docker 20.10).
DEFAULT_MASKED = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                  "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                  "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
DEFAULT_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
GATEKEEPER_CGROUP = "course-gatekeeper"
#: On what the acceptance tests make, a label of their own: the judge ignores it.
KEEP_LABELS = {NAMESPACE_LABEL: "gkacceptance"}


def new_token(prefix: str = "t") -> str:
    """A name part no one else's object carries: lowercase, valid in container and image names."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# -- judging --------------------------------------------------------------------------------


def _inside(path: str, folder: Path | str) -> bool:
    """Whether ``path`` is ``folder`` or below it once symlinks are resolved, or is (same device
    and inode: a bind mount of it) a directory or file of the folder's tree, as a gatekeeper that
    pins a checked folder onto a path of its own hands the daemon."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
        return True
    try:
        wanted = os.stat(path)
    except OSError:
        return False
    for top, dirs, files in os.walk(root):
        for name in ["", *dirs, *files]:
            try:
                found = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
                return True
    return False


def _cpus(host: dict) -> float:
    """The CPU limit the container got, in CPUs (0 when it has none)."""
    nano = host.get("NanoCpus") or 0
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    if quota > 0:
        return quota / (period or 100_000)
    return nano / 1e9 if nano > 0 else 0.0


def volume_violations(volume: dict, namespace: str, *, created_by_attack: bool = True) -> list[str]:
    """A volume's broken rules: the stamp (when the attack created it), a plain local driver."""
    found = []
    name = volume.get("Name", "?")
    if created_by_attack and (volume.get("Labels") or {}).get(GATEKEEPER_LABEL) != namespace:
        found.append(f"volume {name} lacks the stamp {GATEKEEPER_LABEL}={namespace} "
                     f"(labels {volume.get('Labels')})")
    if volume.get("Driver") not in ("local", "", None):
        found.append(f"volume {name} uses driver {volume.get('Driver')!r}")
    options = volume.get("Options") or {}
    tmpfs = options.get("type") == "tmpfs" and options.get("device") == "tmpfs" and \
        "bind" not in options.get("o", "")
    if options and not tmpfs:
        found.append(f"volume {name} has driver options {options} (a local volume's "
                     f"o=bind,device=... is a bind mount in disguise)")
    return found


def container_violations(inspect: dict, scratch: Path | str, namespace: str, *,
                         check_bind_sources: bool = True,
                         volume: Callable[[str], dict | None] | None = None,
                         container: Callable[[str], dict | None] | None = None) -> list[str]:
    """Every rule of the sandbox the container, as the daemon holds it, breaks.

    ``inspect`` is the daemon's own answer to ``GET /containers/{id}/json`` (never the
    gatekeeper's). ``check_bind_sources=False`` leaves out the bind-source rule for a test that
    swaps a folder for a symlink on purpose and judges by what the container sees instead.
    ``volume``/``container`` look named volumes and joined containers up on the daemon.
    """
    found: list[str] = []
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    if labels.get(GATEKEEPER_LABEL) != namespace:
        found.append(f"no stamp {GATEKEEPER_LABEL}={namespace} (labels {labels}): the create "
                     f"reached the daemon unchecked")
    if host.get("Privileged"):
        found.append("Privileged=true")
    if host.get("CapAdd"):
        found.append(f"CapAdd={host['CapAdd']}")
    for key in ("Devices", "DeviceRequests", "DeviceCgroupRules"):
        if host.get(key):
            found.append(f"{key}={host[key]}")
    for key in SHARED_MODES:
        value = host.get(key) or ""
        if value == "host":
            found.append(f"{key}=host" + (" (the daemon's default on a cgroup-v1 host: the "
                                          "gatekeeper must ask for 'private')"
                                          if key == "CgroupnsMode" else ""))
        elif value.startswith("container:") and container is not None:
            other = container(value.removeprefix("container:"))
            theirs = ((other or {}).get("Config") or {}).get("Labels") or {}
            if other is not None and theirs.get(GATEKEEPER_LABEL) != namespace:
                found.append(f"{key}={value} joins a container that is not the submission's")
    for option in host.get("SecurityOpt") or []:
        normal = option.replace(":", "=", 1)
        if "unconfined" in option or normal == "label=disable" or normal.startswith("seccomp="):
            found.append(f"SecurityOpt {option[:80]!r}")
    for key, default in (("MaskedPaths", DEFAULT_MASKED), ("ReadonlyPaths", DEFAULT_READONLY)):
        paths = host.get(key)
        missing = sorted(set(default) - set(paths or ()))
        if paths is None or missing:
            found.append(f"{key}={paths} lacks the daemon's defaults {missing}")
    parent = (host.get("CgroupParent") or "").strip("/")
    own = f"{GATEKEEPER_CGROUP}-{namespace}"
    if parent and (parent != own and not parent.startswith(own + "/") or ".." in parent):
        found.append(f"CgroupParent={host['CgroupParent']!r} chosen by the client (only the "
                     f"gatekeeper's own /{own} may be set)")
    if host.get("Runtime") not in (None, "", "runc"):
        found.append(f"Runtime={host['Runtime']!r}")
    if host.get("VolumeDriver") not in (None, "", "local"):
        found.append(f"VolumeDriver={host['VolumeDriver']!r}")
    for bind in host.get("Binds") or []:
        source = bind.split(":")[0]
        if source.startswith("/"):
            if check_bind_sources and not _inside(source, scratch):
                found.append(f"bind {bind!r}: {os.path.realpath(source)} is outside the "
                             f"scratch folder")
        elif volume is not None:
            found += _named_volume(source, namespace, volume)
    for mount in host.get("Mounts") or []:
        kind, source = mount.get("Type"), mount.get("Source") or ""
        if kind == "bind" and check_bind_sources and not _inside(source, scratch):
            found.append(f"mount of type bind from {source!r} is outside the scratch folder")
        elif kind == "volume":
            driver = ((mount.get("VolumeOptions") or {}).get("DriverConfig") or {})
            if driver.get("Name") not in (None, "", "local") or driver.get("Options"):
                found.append(f"volume mount {source!r} with driver config {driver}")
            if source and volume is not None:
                found += _named_volume(source, namespace, volume)
        elif kind not in ("bind", "volume", "tmpfs"):
            found.append(f"mount of type {kind!r}")
    memory = host.get("Memory") or 0
    if not 0 < memory <= MEMORY_CEILING:
        found.append(f"Memory={memory} (must be > 0 and <= {MEMORY_CEILING})")
    pids = host.get("PidsLimit")
    if not (pids or 0) > 0 or pids > PIDS_CEILING:
        found.append(f"PidsLimit={pids} (must be > 0 and <= {PIDS_CEILING})")
    cpus = _cpus(host)
    if not 0 < cpus <= NANO_CPUS_CEILING / 1e9:
        found.append(f"CPU limit {cpus:g} CPUs (NanoCpus={host.get('NanoCpus')}, "
                     f"CpuQuota={host.get('CpuQuota')}, CpuPeriod={host.get('CpuPeriod')}; "
                     f"must be > 0 and <= 2)")
    log = host.get("LogConfig") or {}
    discarded = log.get("Type") == "none" and not log.get("Config")
    rotated = log.get("Type") in ("json-file", "local") and (log.get("Config") or {}).get(
        "max-size")
    if not (discarded or rotated):
        found.append(f"LogConfig={log} (must be none, or json-file or local with a max-size)")
    return found


def _named_volume(name: str, namespace: str, volume: Callable[[str], dict | None]) -> list[str]:
    found = volume(name)
    if found is None:
        return []
    # A named volume a container mounts is created stamped, or is refused if it is someone
    # else's; an anonymous one (64 hex digits) carries no label.
    anonymous = len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    return volume_violations(found, namespace, created_by_attack=not anonymous)


# -- what carries a token on the daemon ------------------------------------------------------


def containers_with(api, token: str) -> list[dict]:
    """The daemon's inspect of every container whose name or command carries ``token``."""
    found = []
    for listed in api.containers(all=True):
        names = " ".join(listed.get("Names") or [])
        if token in names or token in (listed.get("Command") or ""):
            try:
                found.append(api.inspect_container(listed["Id"]))
            except Exception:  # removed meanwhile
                continue
    return found


def images_with(api, token: str) -> list[dict]:
    return [image for image in api.images(all=True)
            if any(token in tag for tag in image.get("RepoTags") or [])]


def remove_everything_with(api, token: str) -> list[str]:
    """Force-remove, on the daemon itself, every container, image name, volume and network that
    carries ``token``; returns what it removed."""
    removed = []
    for listed in api.containers(all=True):
        names = " ".join(listed.get("Names") or [])
        if token in names or token in (listed.get("Command") or ""):
            try:
                api.remove_container(listed["Id"], force=True, v=True)
                removed.append(f"container {names}")
            except Exception:
                pass
    for image in api.images(all=True):
        for tag in image.get("RepoTags") or []:
            if token in tag:
                try:  # by name: a name on a shared image only untags
                    api.remove_image(tag)
                    removed.append(f"image {tag}")
                except Exception:
                    pass
    for volume in api.volumes().get("Volumes") or []:
        if token in volume["Name"]:
            try:
                api.remove_volume(volume["Name"], force=True)
                removed.append(f"volume {volume['Name']}")
            except Exception:
                pass
    for network in api.networks():
        if token in network["Name"]:
            try:
                api.remove_network(network["Id"])
                removed.append(f"network {network['Name']}")
            except Exception:
                pass
    return removed


def judge_token(api, token: str, scratch: Path | str, namespace: str, **options) -> list[str]:
    """Violations of every container (and volume) on the daemon that carries ``token``."""
    found = []

    def volume(name: str) -> dict | None:
        try:
            return api.inspect_volume(name)
        except Exception:
            return None

    def container(ident: str) -> dict | None:
        try:
            return api.inspect_container(ident)
        except Exception:
            return None

    for inspect in containers_with(api, token):
        for violation in container_violations(inspect, scratch, namespace, volume=volume,
                                              container=container, **options):
            found.append(f"container {inspect['Name']} ({inspect['Id'][:12]}): {violation}")
    for listed in api.volumes().get("Volumes") or []:
        if token in listed["Name"]:
            found += volume_violations(api.inspect_volume(listed["Name"]), namespace)
    for network in api.networks():
        if token in network["Name"]:
            if (network.get("Labels") or {}).get(GATEKEEPER_LABEL) != namespace:
                found.append(f"network {network['Name']} lacks the stamp "
                             f"(labels {network.get('Labels')})")
            if network.get("Driver") != "bridge":
                found.append(f"network {network['Name']} uses driver {network.get('Driver')!r}")
    return found


# -- raw HTTP ---------------------------------------------------------------------------------


def request(method: str, target: str, body: bytes | str | dict | None = None, *,
            headers: Iterable[tuple[str, str]] = (), eol: bytes = b"\r\n",
            content_type: str | None = "application/json", length: bool | int = True,
            host: str = "docker", version: str = "HTTP/1.1", sep: str = ": ") -> bytes:
    """One request's bytes. ``body`` may be a dict (compact JSON), ``length`` False for none or an
    int for a Content-Length that lies; ``eol`` b"\\n" makes a bare-LF head, ``sep`` ":" headers
    without a space."""
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":"))
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    if not target.startswith("/v1"):
        target = API + target
    lines = [f"{method} {target} {version}", f"Host{sep}{host}"]
    if content_type and (body or method == "POST"):
        lines.append(f"Content-Type{sep}{content_type}")
    if length is True and (body or method == "POST"):
        lines.append(f"Content-Length{sep}{len(body)}")
    elif length is not True and length is not False:
        lines.append(f"Content-Length{sep}{length}")
    lines += [f"{name}{sep}{value}" for name, value in headers]
    return eol.join(line.encode("latin-1") for line in lines) + eol + eol + body


def chunked(body: bytes, sizes: Iterable[int] = (), extension: str = "",
            trailer: str = "") -> bytes:
    """``body`` in chunked transfer coding, cut at ``sizes``, with chunk extensions/trailers."""
    out, at = b"", 0
    for size in [*sizes, len(body)]:
        piece = body[at:at + size] if size else body[at:]
        if piece:
            out += f"{len(piece):x}{extension}\r\n".encode() + piece + b"\r\n"
            at += len(piece)
        if at >= len(body):
            break
    return out + f"0{extension}\r\n".encode() + (trailer.encode() + b"\r\n" if trailer else b"") \
        + b"\r\n"


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes = b""
    upgraded: bool = False

    def json(self):
        return json.loads(self.body or b"null")

    def __str__(self) -> str:
        return f"{self.status} {self.reason} {self.body[:200]!r}"


@dataclass
class Conversation:
    """One connection to a Unix socket: send bytes, read the answers they get, as they come."""

    path: str | Path
    timeout: float = 10.0
    buffer: bytes = b""
    closed: bool = False
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:  # the other side already closed: what it answered is still readable
            self.closed = True

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False once the peer closed or the deadline passed."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buffer += data
        return True

    def _parse_one(self, deadline: float) -> Answer | None:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not self._fill(deadline):
                return None
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        answer = Answer(status, parts[2] if len(parts) > 2 else "", headers)
        raw_stream = "vnd.docker.raw-stream" in headers.get("content-type", "") or \
            "vnd.docker.multiplexed-stream" in headers.get("content-type", "")
        if status == 101 or (raw_stream and "content-length" not in headers):
            answer.upgraded = True  # the connection now carries a raw stream, not HTTP
            return answer
        if status in (204, 304) or 100 <= status < 200:
            return answer
        if "chunked" in headers.get("transfer-encoding", "").lower():
            answer.body = self._read_chunked(deadline)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buffer) < length and self._fill(deadline):
                pass
            answer.body, self.buffer = self.buffer[:length], self.buffer[length:]
        else:
            while self._fill(deadline):
                pass
            answer.body, self.buffer = self.buffer, b""
        return answer

    def _read_chunked(self, deadline: float) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                if not self._fill(deadline):
                    return body + self.buffer
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                return body
            if size == 0:
                while b"\r\n" not in self.buffer and self._fill(deadline):
                    pass
                self.buffer = self.buffer.split(b"\r\n", 1)[-1]
                return body
            while len(self.buffer) < size + 2 and self._fill(deadline):
                pass
            body, self.buffer = body + self.buffer[:size], self.buffer[size + 2:]

    def read(self, count: int = 1, timeout: float | None = None) -> list[Answer]:
        """Up to ``count`` more answers: fewer if the peer closes, upgrades or the time runs out."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got = []
        while len(got) < count:
            answer = self._parse_one(deadline)
            if answer is None:
                break
            got.append(answer)
            self.answers.append(answer)
            if answer.upgraded:
                break
        return got

    def drain(self, timeout: float = 2.0) -> bytes:
        """What else arrives before the peer closes or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        data, self.buffer = self.buffer, b""
        return data


def exchange(path: str | Path, data: bytes, answers: int = 1, timeout: float = 10.0
             ) -> list[Answer]:
    """Send ``data`` on a fresh connection in one send; the answers that come back."""
    with Conversation(path, timeout) as talk:
        talk.send(data)
        return talk.read(answers)


def create_body(token: str, host_config: dict | None = None, **top) -> dict:
    """A container create body whose name part and command carry ``token``."""
    body = {"Image": BUSYBOX_IMAGE, "Cmd": ["sleep", "1", token], "Labels": dict(KEEP_LABELS),
            **top}
    if host_config is not None:
        body["HostConfig"] = host_config
    return body


# -- JSON the way an attacker writes it: duplicate keys, any spelling ----------------------------


class Raw(str):
    """JSON text to put in a body as it is (a value or a key already written out)."""


def obj(*pairs: tuple[str | Raw, object]) -> Raw:
    """A JSON object from (key, value) pairs, kept in order and duplicates kept."""
    return Raw("{" + ",".join(f"{_key(key)}:{_value(value)}" for key, value in pairs) + "}")


def _key(key: str | Raw) -> str:
    return key if isinstance(key, Raw) else json.dumps(key, ensure_ascii=False)


def _value(value: object) -> str:
    return value if isinstance(value, Raw) else json.dumps(value, separators=(",", ":"),
                                                           ensure_ascii=False)


def fold(key: str) -> str:
    """``key`` as Go's encoding/json still matches it but ``str.lower()`` does not: the first k
    becomes the Kelvin sign K (U+212A), else the first s the long s ſ (U+017F)."""
    for letter, folded in (("k", "\u212a"), ("s", "\u017f")):
        at = key.lower().find(letter)
        if at >= 0:
            return key[:at] + folded + key[at + 1:]
    return key


def escaped(key: str) -> Raw:
    """``key`` with its first letter written as a JSON \\u escape."""
    return Raw(f'"\\u{ord(key[0]):04x}{key[1:]}"')


#: Keys whose values are maps of the user's own keys (label names, log options), kept as they are.
MAP_KEYS = {"labels", "config", "driveropts", "options", "sysctls", "storageopt", "tmpfs",
            "exposedports", "portbindings", "volumes", "endpointsconfig"}


def lower_keys(value, keep: bool = False):
    """Every struct key lowercased, recursively; the contents of maps (``MAP_KEYS``) left alone."""
    if isinstance(value, dict):
        return {(key if keep else key.lower()): lower_keys(item, keep=key.lower() in MAP_KEYS)
                for key, item in value.items()}
    if isinstance(value, list):
        return [lower_keys(item) for item in value]
    return value


# -- images, builds --------------------------------------------------------------------------


class FileServer:
    """Files served on 127.0.0.1, where the daemon could fetch a remote build context from;
    ``hits`` records every path asked for."""

    def __init__(self) -> None:
        import http.server
        import threading

        files: dict[str, bytes] = {}
        hits: list[str] = []

        class Files(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                hits.append(self.path)
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_):
                pass

        self.files, self.hits = files, hits
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def serve(self, path: str, text: str | bytes) -> str:
        """Serve ``text`` at ``path``; its URL."""
        self.files[path] = text.encode() if isinstance(text, str) else text
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()


def tar_context(files: dict[str, str | bytes]) -> bytes:
    """A build context (or put_archive payload): a tar of the given files."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def image_file(api, image: str, path: str, token: str) -> bytes | None:
    """A file's content in an image, read on the daemon through a created (never started)
    container named after ``token``; None if the image or the file is not there."""
    import io
    import tarfile

    try:
        ident = api.create_container(image, ["true", token],
                                     name=f"{token}-reader-{uuid.uuid4().hex[:6]}")["Id"]
    except Exception:
        return None
    try:
        stream, _ = api.get_archive(ident, path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.getmembers()[0]
            handle = tar.extractfile(member)
            return handle.read() if handle else None
    except Exception:
        return None
    finally:
        api.remove_container(ident, force=True)


#: What a build's RUN step writes down about the place it ran in (read back by ``records``).
RECORD_STEP = ("(cat /proc/net/dev > /rec-net; cat /sys/class/net/*/address > /rec-mac; "
               "cat /proc/self/cgroup > /rec-cgroup; "
               "cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /rec-memory; "
               "grep hierarchical_memory_limit /sys/fs/cgroup/memory/memory.stat "
               "> /rec-hmemory; cat /sys/fs/cgroup/pids/pids.max > /rec-pids) 2>/dev/null; true")
RECORD_FILES = ("/rec-net", "/rec-mac", "/rec-cgroup", "/rec-memory", "/rec-hmemory",
                "/rec-pids", "/rec-procs")


def records(api, image: str, token: str) -> dict[str, str]:
    found = {}
    for path in RECORD_FILES:
        data = image_file(api, image, path, token)
        if data is not None:
            found[path] = data.decode("utf-8", "replace")
    return found


def record_violations(found: dict[str, str], *, aspects: Iterable[str],
                      cgroup_parent: str = "", other_mac: str = "") -> list[str]:
    """What a RUN step's records show it had that the sandbox forbids (only ``aspects``)."""
    out = []
    aspects = set(aspects)
    if "network" in aspects and "/rec-net" in found:
        names = {line.split(":")[0].strip() for line in found["/rec-net"].splitlines()[2:]
                 if ":" in line}
        if names - {"lo", "eth0"}:
            out.append(f"the RUN step ran in the host's network namespace (it sees the "
                       f"interfaces {sorted(names)})")
        if other_mac and other_mac in found.get("/rec-mac", ""):
            out.append(f"the RUN step joined another container's network (it has its MAC "
                       f"address {other_mac})")
    if "cgroup" in aspects and cgroup_parent and cgroup_parent.strip("/") in found.get(
            "/rec-cgroup", ""):
        out.append(f"the RUN step ran under the client's cgroup parent {cgroup_parent!r}: "
                   f"{found['/rec-cgroup'].splitlines()[0]}")
    if "memory" in aspects and "/rec-memory" in found:
        # A parent cgroup's limit binds the step too: memory.stat shows the effective one.
        limits = [int(found["/rec-memory"].strip() or 0)]
        if found.get("/rec-hmemory", "").split()[1:]:
            limits.append(int(found["/rec-hmemory"].split()[1]))
        limit = min(limits)
        if not 0 < limit <= MEMORY_CEILING:
            out.append(f"the RUN step's memory limit is {limit} bytes (more than 1 GiB)")
    if "pids" in aspects and "/rec-pids" in found and "/rec-procs" not in found:
        # Only where no processes were counted: a parent cgroup's pids limit is not shown here.
        value = found["/rec-pids"].strip()
        if not value.isdigit() or not 0 < int(value) <= PIDS_CEILING:
            out.append(f"the RUN step's pids.max is {value!r} (no limit of at most "
                       f"{PIDS_CEILING})")
    if "pids" in aspects and "/rec-procs" in found:
        count = int(found["/rec-procs"].strip() or 0)
        if count > PIDS_CEILING:
            out.append(f"the RUN step ran {count} processes at once (more than {PIDS_CEILING})")
    return out


def remove_new_images(api, token: str, before: set[str]) -> None:
    """Remove images made since ``before`` whose inspect mentions ``token`` (build steps,
    commits, untagged results), newest first; others' new images are left alone."""
    for _ in range(3):
        mine = []
        for image in api.images(all=True):
            if image["Id"] in before:
                continue
            try:
                found = api.inspect_image(image["Id"])
            except Exception:
                continue
            if token in json.dumps(found):
                mine.append(found)
        if not mine:
            return
        for found in sorted(mine, key=lambda i: i.get("Created", ""), reverse=True):
            try:
                for tag in found.get("RepoTags") or []:
                    api.remove_image(tag)
                api.remove_image(found["Id"])
            except Exception:
                continue
