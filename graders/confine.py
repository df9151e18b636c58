"""Start a kernel confined: ``python -m graders.confine [options] -- KERNEL COMMAND``.

Run as root by the grader's kernel manager, it gives the kernel a private mount namespace in
which the checkout and the grader's secrets (solutions, gradebooks, other submissions) are
covered, the Python installation and the ``graders`` package are reachable, and the scratch
folder is nosuid and nodev; copies the connection file into the kernel's channel folder, sets
resource limits, drops to the submission's own unprivileged user for good (no new privileges),
and execs the kernel. Plain standard library on purpose: it runs before anything else in the
kernel's process.

With ``--module`` it runs a Python module in this same process instead of exec'ing a command
(the judge, graders.judging.process): a process that changed its user is not dumpable, and only
an exec would make it dumpable again, so the module can be neither traced nor read through
/proc by the submission's user, from its first instruction on.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import tempfile
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18
CLONE_NEWNS = 0x00020000
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
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


def _top(path: Path, uid: int, covered: set[Path]) -> Path | None:
    """The highest folder, ``path`` included, to replace: one ``uid`` cannot enter (e.g.
    /root) or one to cover (the checkout)."""
    for ancestor in [*reversed(path.parents), path]:
        if ancestor != Path("/") and (ancestor in covered or _closed(ancestor, uid)):
            return ancestor
    return None


def expose(paths: list[str], uid: int, covered: list[str]) -> None:
    """Make each path reachable for others: a closed ancestor (e.g. /root), and each covered
    folder (the checkout), becomes an empty, open tmpfs with only these paths mounted back
    into it; the rest of it (the rest of /root, the checkout's .git) is gone.

    A path that is itself a closed folder (a checkout in a 0700 temporary folder) is put back
    entry by entry into an open one, so its entries keep their own modes.
    """
    wanted = {Path(os.path.realpath(p)) for p in paths if os.path.exists(p)}
    covers = {Path(os.path.realpath(p)) for p in covered}
    by_top: dict[Path, list[Path]] = {cover: [] for cover in covers
                                      if cover.exists() and _top(cover, uid, covers) == cover}
    for path in wanted:
        if any(other in path.parents for other in wanted):
            continue  # comes along with the folder that holds it
        top = _top(path, uid, covers)
        if top is not None:
            inside = sorted(path.iterdir()) if path.is_dir() and _closed(path, uid) else [path]
            by_top.setdefault(top, []).extend(inside)
    for top, inside in by_top.items():
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
        _mount("tmpfs", str(top), "tmpfs", 0, "mode=0755,size=1m")
        for source, path in staged:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if source.is_dir() else path.touch()
            _mount(str(source), str(path), None, MS_MOVE)
            source.rmdir() if source.is_dir() else source.unlink()
        for path, target in links:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        stage.rmdir()


def hide(paths: dict[str, bool]) -> None:
    """Cover each folder (``True``) with an empty tmpfs and each file with /dev/null. One that
    expose() took away with a covered or closed folder gets a stand-in first: a kernel finds
    a hidden path closed wherever it is."""
    for path, folder in paths.items():
        if not os.path.lexists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.mkdir(path) if folder else open(path, "x").close()
        if folder:
            _mount("tmpfs", path, "tmpfs", MS_RDONLY, "mode=0700,size=4k")
        else:
            _mount("/dev/null", path, None, MS_BIND)


def seal(scratch: Path) -> None:
    """Make the scratch folder nosuid and nodev, still writable: containers run as root and
    bind-mount it, so one could leave a setuid-root program or a device node in it."""
    _mount(str(scratch), str(scratch), None, MS_BIND)
    kept = os.statvfs(scratch).f_flag & (os.ST_RDONLY | os.ST_NOEXEC)  # a remount resets them
    _mount(None, str(scratch), None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | kept)


def _prctl(option: int, value: int, name: str) -> None:
    if _libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0),
                   ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl({name}): {os.strerror(error)}")


def no_new_privs() -> None:
    """No setuid program or file capability gives the kernel or its children any privilege."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")


def limit(processes: int, memory: int) -> None:
    for kind, value in ((resource.RLIMIT_NPROC, processes), (resource.RLIMIT_AS, memory),
                        (resource.RLIMIT_FSIZE, 2**30), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(kind, (value, value))


def own_connection_file(command: list[str], channels: Path, uid: int) -> list[str]:
    """The kernel reads its connection file after dropping privileges: give it its own copy.

    The folder is the kernel user's, so the copy is made afresh (never through a link put
    there) and changed through its descriptor.
    """
    index = command.index("-f") + 1
    copy = channels / "kernel.json"
    descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(descriptor, "wb") as target, open(command[index], "rb") as source:
        os.fchown(descriptor, uid, uid)
        target.write(source.read())
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
    parser.add_argument("--channels", type=Path, help="where the kernel's connection file goes")
    parser.add_argument("--processes", type=int, default=128)
    parser.add_argument("--memory", type=int, default=3 * 2**30)
    parser.add_argument("--expose", action="append", default=[])
    parser.add_argument("--cover", action="append", default=[])
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--module", help="run this module here, its arguments after --")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.channels is not None:
        command = own_connection_file(command, args.channels, args.uid)
    hidden = {path: os.path.isdir(path) for path in args.hide if os.path.exists(path)}
    private_mounts()
    expose(args.expose, args.uid, args.cover)
    hide(hidden)
    seal(args.scratch)
    limit(args.processes, args.memory)
    if args.module:
        _prctl(PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")  # kept through the change of user
    os.setgroups([])
    os.setgid(args.uid)
    os.setuid(args.uid)
    no_new_privs()
    os.chdir(args.scratch)
    if args.module:
        import runpy

        kept = environment(args.scratch, args.uid)
        os.environ.clear()
        os.environ.update(kept)
        sys.argv = [args.module, *command]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        return
    os.execvpe(command[0], command, environment(args.scratch, args.uid))


if __name__ == "__main__":
    sys.exit(main())
