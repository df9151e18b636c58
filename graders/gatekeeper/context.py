"""A build context read whole, checked, and written again as a plain tar the daemon reads as-is.

The daemon unpacks the context (compressed or not) and reads the Dockerfile from what it
unpacked. The gatekeeper reads the same archive, refuses what two readers could take two ways
(duplicate names, paths through symlinks, a Dockerfile that is a link), puts the Dockerfile it
checked in place of the submitted one, and sends the daemon a fresh uncompressed tar.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass

from .dockerfile import Dockerfile, parse
from .rules import Refused

MAX_CONTEXT = 256 * 2**20
DEFAULT_NAME = "Dockerfile"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _refuse(message: str) -> Refused:
    return Refused("build-context", message, 400, in_stream=True)


@dataclass
class Entry:
    info: tarfile.TarInfo
    data: bytes | None


@dataclass
class BuildContext:
    entries: dict[str, Entry]
    dockerfile_name: str
    dockerfile: Dockerfile

    def archive(self) -> bytes:
        """The context as the daemon receives it: the checked Dockerfile in place."""
        text = self.dockerfile.text().encode("utf-8", "surrogateescape")
        output = io.BytesIO()
        with tarfile.open(fileobj=output, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, entry in self.entries.items():
                info = _copy(entry.info, name)
                data = entry.data
                if name == self.dockerfile_name:
                    data = text
                if data is not None:
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return output.getvalue()


def _copy(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    fresh = tarfile.TarInfo(name)
    fresh.type = info.type
    fresh.mode, fresh.mtime = info.mode & 0o7777, int(info.mtime)
    fresh.uid, fresh.gid, fresh.uname, fresh.gname = info.uid, info.gid, info.uname, info.gname
    fresh.linkname = info.linkname if info.issym() else ""
    return fresh


def _name(raw: str) -> str:
    """A member's path relative to the context root; "" for the root itself."""
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", "."):
        return ""
    if name.startswith("/") or ".." in name.split("/") or "//" in name or \
            posixpath.normpath(name) != name:
        raise _refuse(f"the build context has an entry named {raw!r}: paths must be plain "
                      f"and relative")
    return name


def _entries(data: bytes) -> dict[str, Entry]:
    if data.startswith(ZSTD_MAGIC):
        raise _refuse("a zstd-compressed build context is not accepted: send a plain tar, or "
                      "one compressed with gzip, bzip2 or xz")
    entries: dict[str, Entry] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            total = 0
            for info in tar:
                name = _name(info.name)
                if not name:
                    continue
                if name in entries:
                    raise _refuse(f"the build context has two entries named {name!r}")
                if info.islnk():
                    target = entries.get(_name(info.linkname))
                    if target is None or target.data is None:
                        raise _refuse(f"the hard link {name!r} points at no earlier file")
                    info, payload = _copy(target.info, name), target.data
                elif info.isfile():
                    payload = tar.extractfile(info).read()
                elif info.isdir() or info.issym():
                    payload = None
                else:
                    raise _refuse(f"the build context entry {name!r} is a device or a pipe")
                total += len(payload or b"")
                if total > MAX_CONTEXT:
                    raise _refuse(f"the build context is larger than {MAX_CONTEXT >> 20} MiB")
                entries[name] = Entry(info, payload)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise _refuse(f"the build context is not a tar archive ({error})") from None
    for name in entries:
        parent = posixpath.dirname(name)
        while parent:
            if parent in entries and entries[parent].info.issym():
                raise _refuse(f"the build context entry {name!r} lies under the symlink "
                              f"{parent!r}")
            parent = posixpath.dirname(parent)
    return entries


def read_context(data: bytes, dockerfile: str | None) -> BuildContext:
    """The context and its Dockerfile, parsed; ``dockerfile`` as the build's parameter."""
    entries = _entries(data)
    wanted = _name(dockerfile or DEFAULT_NAME)
    name = wanted
    if name not in entries and wanted == DEFAULT_NAME and DEFAULT_NAME.lower() in entries:
        name = DEFAULT_NAME.lower()  # the daemon falls back to "dockerfile" as well
    entry = entries.get(name)
    if entry is None:
        raise _refuse(f"Cannot locate specified Dockerfile: {dockerfile or DEFAULT_NAME}")
    if entry.data is None:
        raise _refuse(f"the Dockerfile {name!r} must be a regular file, not a link or folder")
    text = entry.data.decode("utf-8", "surrogateescape")
    return BuildContext(entries, name, parse(text))
