"""Start a kernel confined: ``python -m graders.confine [options] -- KERNEL COMMAND``.

Run as root by the grader's kernel manager, it gives the kernel a private mount namespace in
which the grader's secrets (solutions, gradebooks, other submissions) are covered and the
Python installation is reachable, copies the connection file into the scratch folder, sets
resource limits, drops to the submission's own unprivileged user, and execs the kernel. Plain
standard library on purpose: it runs before anything else in the kernel's process.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

MS_RDONLY, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 1, 4096, 8192, 16384, 1 << 18
CLONE_NEWNS = 0x00020000
KEPT_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "DOCKER_HOST",
                    "PYTHONUNBUFFERED", "PYTHONIOENCODING")

_libc = ctypes.CDLL(None, use_errno=True)


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    if _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def private_mounts() -> None:
    """A mount namespace of its own whose changes never reach the host."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare: {os.strerror(error)}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def _closed(path: Path, uid: int) -> bool:
    """Whether ``uid`` cannot enter ``path``: closed to others and not its own."""
    found = path.stat()
    return not found.st_mode & 0o001 and found.st_uid != uid


def _closed_ancestor(path: Path, uid: int) -> Path | None:
    """The highest folder, ``path`` included, that ``uid`` cannot enter, e.g. /root."""
    for ancestor in [*reversed(path.parents), path]:
        if ancestor != Path("/") and _closed(ancestor, uid):
            return ancestor
    return None


def expose(paths: list[str], uid: int) -> None:
    """Make each path reachable for others: a closed ancestor becomes an empty, open tmpfs
    with only these paths mounted back into it (the rest of it, e.g. /root, stays hidden).

    A path that is itself a closed folder (a checkout in a 0700 temporary folder) is put back
    entry by entry into an open one, so its entries keep their own modes.
    """
    wanted = {Path(os.path.realpath(p)) for p in paths if os.path.exists(p)}
    by_ancestor: dict[Path, list[Path]] = {}
    for path in wanted:
        if any(other in path.parents for other in wanted):
            continue  # comes along with the folder that holds it
        ancestor = _closed_ancestor(path, uid)
        if ancestor is not None:
            inside = sorted(path.iterdir()) if path.is_dir() and _closed(path, uid) else [path]
            by_ancestor.setdefault(ancestor, []).extend(inside)
    for ancestor, inside in by_ancestor.items():
        stage = Path(tempfile.mkdtemp(prefix="course-confine-"))
        staged, links = [], []
        for number, path in enumerate(sorted(inside)):
            if path.is_symlink():
                links.append((path, os.readlink(path)))
                continue
            point = stage / str(number)
            point.mkdir() if path.is_dir() else point.touch()
            _mount(str(path), str(point), None, MS_BIND | MS_REC)
            staged.append((point, path))
        _mount("tmpfs", str(ancestor), "tmpfs", 0, "mode=0755,size=1m")
        for source, path in staged:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if source.is_dir() else path.touch()
            _mount(str(source), str(path), None, MS_MOVE)
            source.rmdir() if source.is_dir() else source.unlink()
        for path, target in links:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        stage.rmdir()


def hide(paths: list[str]) -> None:
    """Cover folders with an empty tmpfs and files with /dev/null."""
    for path in paths:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY, "mode=0700,size=4k")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)


def limit(processes: int, memory: int) -> None:
    for kind, value in ((resource.RLIMIT_NPROC, processes), (resource.RLIMIT_AS, memory),
                        (resource.RLIMIT_FSIZE, 2**30), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(kind, (value, value))


def own_connection_file(command: list[str], scratch: Path, uid: int) -> list[str]:
    """The kernel reads its connection file after dropping privileges: give it its own copy."""
    if "-f" not in command:
        return command
    index = command.index("-f") + 1
    copy = scratch / ".kernel-connection.json"
    shutil.copyfile(command[index], copy)
    os.chown(copy, uid, uid)
    os.chmod(copy, 0o600)
    return [*command[:index], str(copy), *command[index + 1:]]


def environment(scratch: Path, uid: int) -> dict[str, str]:
    """Only what a kernel needs: no credentials or URLs from the grader's environment."""
    env = {k: v for k, v in os.environ.items()
           if k in KEPT_ENVIRONMENT or k.startswith("JPY_")}
    home = str(scratch)
    env.update(HOME=home, TMPDIR=home, USER=f"submission{uid}", LOGNAME=f"submission{uid}",
               IPYTHONDIR=f"{home}/.ipython", MPLCONFIGDIR=f"{home}/.matplotlib")
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m graders.confine", description=__doc__)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=128)
    parser.add_argument("--memory", type=int, default=3 * 2**30)
    parser.add_argument("--expose", action="append", default=[])
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = own_connection_file(command, args.scratch, args.uid)
    private_mounts()
    expose(args.expose, args.uid)
    hide(args.hide)
    limit(args.processes, args.memory)
    os.setgroups([])
    os.setgid(args.uid)
    os.setuid(args.uid)
    os.chdir(args.scratch)
    os.execvpe(command[0], command, environment(args.scratch, args.uid))


if __name__ == "__main__":
    sys.exit(main())
