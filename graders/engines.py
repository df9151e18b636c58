"""Which Docker Engine the course runs on: 20.10 or 26.1, both Debian's own `docker.io`.

Debian 12 (bookworm) packages Engine 20.10 and Debian 13 (trixie) Engine 26.1. Trixie's
docker.io installs on bookworm with bookworm's own containerd (1.6) and runc (1.1.5), and the
other way round, so the engine that is not the system's own is taken from the other release
through an apt source pinned at priority 100: nothing else is ever upgraded from it (trixie's
runc needs glibc 2.38, which bookworm lacks), and only `docker.io/<release>` is asked for.

Two ways to get an engine:

- ``install_engine`` installs it system-wide with apt (``course setup --engine``);
- ``provide_engine`` downloads and unpacks it into a cache folder without installing anything,
  for a second daemon beside the main one (``SideDaemon(bin_dir=...)``, the other-engine test).

``plan_setup`` decides, from what runs and what is installed, what `course setup` should do;
it is pure, so every decision is tested without touching the machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .apt import apt_download, apt_install, apt_update
from .errors import CourseError

Step = Callable[[str], None]

#: The engines the course supports, oldest first, and the Debian release whose docker.io each is.
SUITES = {"20.10": "bookworm", "26.1": "trixie"}
ENGINES = tuple(SUITES)
#: What `--engine auto` installs on a machine without dockerd.
CURRENT = "26.1"
#: Debian release codenames, for the other release's docker.io.
DEBIAN_CODENAMES = {"12": "bookworm", "13": "trixie"}
#: The containerd image store (the "containerd-snapshotter" feature) needs Engine 24 or later.
CONTAINERD_STORE_ENGINES = ("26.1",)
IMAGE_STORES = ("classic", "containerd")
SNAPSHOTTER_FEATURE = "containerd-snapshotter"
#: What `docker info` says in DriverStatus when the containerd image store is on.
SNAPSHOTTER_DRIVER_TYPE = ["driver-type", "io.containerd.snapshotter.v1"]

#: Oldest containerd each engine was run against here (bookworm's 1.6.20 runs 26.1, classic and
#: containerd store alike); an older system containerd means fetching the engine's own release's.
MIN_CONTAINERD = {"20.10": (1, 4), "26.1": (1, 6)}

PIN_PRIORITY = 100
#: docker.io's dependencies that must come from the system's own release (never trixie's runc
#: on bookworm: it needs glibc 2.38); the rest of its Depends are there on any Debian.
OWN_RELEASE_DEPENDS = ("containerd", "runc", "tini", "iptables")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_SOURCES = Path("/etc/apt/sources.list.d")
APT_PREFERENCES = Path("/etc/apt/preferences.d")
OS_RELEASE = Path("/etc/os-release")
DAEMON_JSON = Path("/etc/docker/daemon.json")
#: Where ``provide_engine`` keeps each engine: the .deb files, the unpacked tree, a bin folder.
ENGINE_CACHE = Path("/var/cache/docker-course/engines")
#: The binaries of an unpacked engine that go into its bin folder (never runc: see above).
ENGINE_BINARIES = ("usr/sbin/dockerd", "usr/sbin/docker-proxy")
CONTAINERD_BINARIES = ("usr/bin/containerd", "usr/bin/containerd-shim-runc-v2", "usr/bin/ctr")


class EngineError(CourseError):
    """The engine asked for cannot be provided here, or not without stopping someone's daemon."""

    remedy = "Run `course setup --engine auto` to keep the engine that is there."


def engine_of(version: str | None) -> str | None:
    """The course's name for a version string: "20.10.24+dfsg1" -> "20.10", "26.1.5" -> "26.1"."""
    found = re.search(r"(\d+)\.(\d+)", version or "")
    return f"{int(found[1])}.{int(found[2])}" if found else None


def _version_numbers(text: str) -> tuple[int, ...]:
    found = re.search(r"(\d+)\.(\d+)", text)
    return (int(found[1]), int(found[2])) if found else ()


def binary_version(binary: str | Path) -> str | None:
    """What ``<binary> --version`` prints (dockerd: "Docker version 20.10.24+dfsg1, build …")."""
    try:
        result = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    match = re.search(r"version (\S+?),? ", result.stdout + " ") or re.search(
        r" (\d+\.\d+\S*)", result.stdout)
    return match[1] if match else None


def system_engine(codename: str | None = None) -> str:
    """The engine of this Debian release's own docker.io (20.10 on Debian 12, 26.1 on Debian
    13); elsewhere "auto", whatever the system's packages give."""
    own = {suite: engine for engine, suite in SUITES.items()}
    return own.get(codename or debian_codename() or "", "auto")


def installed_engine() -> str | None:
    """The engine of the ``dockerd`` on PATH, or None if there is none."""
    dockerd = shutil.which("dockerd")
    return engine_of(binary_version(dockerd)) if dockerd else None


def process_engine(pid: int) -> str | None:
    """The engine of a running dockerd, from its own binary (it may not answer yet)."""
    return engine_of(binary_version(f"/proc/{pid}/exe"))


def image_store(info: dict) -> str:
    """"containerd" when the daemon keeps images in containerd's snapshotters, else "classic"."""
    status = info.get("DriverStatus") or []
    return "containerd" if SNAPSHOTTER_DRIVER_TYPE in [list(pair) for pair in status] \
        else "classic"


# --- what `course setup` should do ------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What is there: the engine answering (None: no daemon), its image store, the engine of the
    dockerd installed (None: none), whether `course` started the running dockerd, and whether it
    serves the default local socket (not a DOCKER_HOST or CLI context)."""

    running: str | None = None
    running_store: str | None = None
    installed: str | None = None
    ours: bool = False
    local: bool = True
    via: str = "the default socket"


@dataclass(frozen=True)
class Plan:
    """What to do, in order: stop the running dockerd, install ``engine``, write the image store
    into daemon.json, start dockerd. ``refuse`` set means do nothing and say so."""

    engine: str | None
    stop: bool = False
    install: bool = False
    write_store: str | None = None
    start: bool = False
    refuse: str | None = None
    remedy: str = ""


def plan_setup(engine: str, store: str | None, facts: Facts) -> Plan:
    """Decide what `course setup --engine ENGINE [--image-store STORE]` does given ``facts``.

    `auto` never replaces an engine that is there: the one running, else the one installed, else
    the current one is installed. A daemon `course` did not start is never stopped: a change it
    would need is refused with what to do instead.
    """
    if engine not in ("auto", *ENGINES):
        return Plan(None, refuse=f"Unknown engine {engine!r}: choose one of auto, "
                    f"{', '.join(ENGINES)}.", remedy="Run `course setup --engine auto`.")
    target = (facts.running or facts.installed or CURRENT) if engine == "auto" else engine
    if store == "containerd" and target not in CONTAINERD_STORE_ENGINES:
        return Plan(target, refuse=f"The containerd image store needs Engine "
                    f"{' or '.join(CONTAINERD_STORE_ENGINES)}; Engine {target} has only the "
                    "classic one.", remedy="Run `course setup --engine 26.1 --image-store "
                    "containerd`, or leave out --image-store.")
    running = facts.running
    if running is None and not facts.local:
        # Someone else's endpoint that does not answer: ensure_daemon reports it, as always.
        return Plan(target)
    change_engine = running is not None and running != target
    change_store = running is not None and store is not None and facts.running_store != store
    if change_engine or change_store:
        what = (f"Engine {target} instead of {running}" if change_engine
                else f"the {store} image store instead of {facts.running_store}")
        if not facts.local:
            return Plan(target, refuse=f"The daemon at {facts.via} runs Engine {running}; "
                        f"`course setup` changes only a local daemon it started itself, so it "
                        f"cannot give you {what}.",
                        remedy="Change that daemon yourself, or unset DOCKER_HOST to use the "
                        "local one.")
        if not facts.ours:
            return Plan(target, refuse=f"Engine {running} is running here and was not started "
                        f"by `course`, so it is left alone rather than replaced by {what}.",
                        remedy=f"Keep it (`course setup --engine auto`, or --engine {running}"
                        f"{'' if change_engine else ' without --image-store'}), or stop that "
                        "dockerd yourself and run the same command again.")
    restart = change_engine or change_store
    start = running is None or restart
    return Plan(target, stop=restart, install=start and facts.installed != target,
                write_store=store if store is not None and start else None, start=start)


# --- apt sources for the other release ----------------------------------------------------------


def debian_codename(os_release: Path = OS_RELEASE) -> str | None:
    """"bookworm", "trixie", … on Debian; None elsewhere (Ubuntu has its own docker.io)."""
    try:
        text = os_release.read_text()
    except OSError:
        return None
    fields = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.MULTILINE))
    if fields.get("ID") != "debian":
        return None
    return fields.get("VERSION_CODENAME") or DEBIAN_CODENAMES.get(fields.get("VERSION_ID", ""))


def debian_mirror(codename: str | None, sources: Path = APT_SOURCES,
                  sources_list: Path = Path("/etc/apt/sources.list")) -> tuple[str, str]:
    """The mirror and keyring this machine gets its own release from (a local mirror or proxy is
    then used for the other release too), else deb.debian.org and Debian's keyring."""
    entries: list[dict[str, str]] = []
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")):
                    fields[key.strip().lower()] = value.strip()
            entries.append(fields)
    try:
        for line in sources_list.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)", line.strip())
            if match:
                options = dict(re.findall(r"([\w-]+)=(\S+)", match[1] or ""))
                entries.append({"types": "deb", "uris": match[2], "suites": match[3],
                                "components": match[4],
                                "signed-by": options.get("signed-by", "")})
    except OSError:
        pass
    for fields in entries:
        if ("deb" in fields.get("types", "").split() and codename
                and codename in fields.get("suites", "").split()
                and "main" in fields.get("components", "").split()
                and fields.get("enabled", "yes") != "no"):
            uri = fields.get("uris", "").split()[0] if fields.get("uris") else ""
            signed_by = fields.get("signed-by", "")
            if uri and "\n" not in signed_by:
                return uri, signed_by if signed_by.startswith("/") else DEBIAN_KEYRING
    return DEFAULT_MIRROR, DEBIAN_KEYRING


def source_text(suite: str, mirror: str = DEFAULT_MIRROR, keyring: str = DEBIAN_KEYRING) -> str:
    """A deb822 source for ``suite``'s main component (its packages are then pinned low)."""
    return (f"# Added by `course setup` for docker.io/{suite} only; see docker-course-{suite}"
            f".pref.\nTypes: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n"
            f"Signed-By: {keyring}\n")


def pin_text(suite: str, priority: int = PIN_PRIORITY) -> str:
    """apt preferences keeping ``suite`` at ``priority``: never an upgrade candidate for what the
    system's own release provides, only for what is asked from it by name (``docker.io/suite``)
    and what was installed from it."""
    return (f"# Added by `course setup`: nothing is upgraded from {suite} unless asked for.\n"
            f"Package: *\nPin: release n={suite}\nPin-Priority: {priority}\n")


def source_paths(suite: str, sources: Path | None = None,
                 preferences: Path | None = None) -> tuple[Path, Path]:
    return ((sources or APT_SOURCES) / f"docker-course-{suite}.sources",
            (preferences or APT_PREFERENCES) / f"docker-course-{suite}.pref")


def write_apt_source(suite: str, sources: Path | None = None,
                     preferences: Path | None = None,
                     codename: str | None = None) -> tuple[Path, Path]:
    """Add ``suite`` as a source pinned at PIN_PRIORITY (the pin first, so no apt run between
    sees the source unpinned); return the two files."""
    sources = sources or APT_SOURCES
    mirror, keyring = debian_mirror(codename or debian_codename(), sources)
    source, pin = source_paths(suite, sources, preferences)
    for path, text in ((pin, pin_text(suite)), (source, source_text(suite, mirror, keyring))):
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, text)
    return source, pin


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.chmod(mode)
    temporary.replace(path)


def installed_packages(names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` dpkg has installed."""
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n",
                                 *names], capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.split()[0] for line in result.stdout.splitlines()
            if line.endswith(" installed")}


def install_engine(engine: str, on_step: Step | None = None, installer=apt_install,
                   codename: str | None = None, exact: bool = True,
                   installed: Callable[[tuple[str, ...]], set[str]] | None = None) -> None:
    """Install Debian's docker.io of ``engine`` system-wide: the system's own, or
    ``docker.io/<release>`` from the other release, pinned (``installer`` is apt_install).

    apt takes the dependencies a ``docker.io/<release>`` brings in new from that release too
    (on a bare bookworm, trixie's containerd), pins or not; so those not installed yet are named
    beside it, which keeps them at the system's own release.

    Not on Debian, ``exact=False`` (what `auto` asks) installs the system's docker.io whatever
    its engine; ``exact=True`` refuses, since only Debian's releases are known here.
    """
    step = on_step or (lambda _message: None)
    codename = codename or debian_codename()
    suite = SUITES[engine]
    if codename is None:
        if not exact:
            installer(["docker.io"], EngineError, step)
            return
        raise EngineError(
            f"Engine {engine} is Debian {suite}'s docker.io, and this is not Debian.",
            "Install the Docker Engine you want by hand (docker.io or Docker's own packages), "
            "then run `course setup --engine auto`.")
    if codename == suite:  # by release: it may replace the other release's newer docker.io
        installer([f"docker.io/{suite}"], EngineError, step, True)
        return
    source, pin = write_apt_source(suite, codename=codename)
    step(f"Added {source} and {pin}: {suite} pinned at {PIN_PRIORITY}, only docker.io from it")
    present = (installed or installed_packages)(OWN_RELEASE_DEPENDS)
    own = [name for name in OWN_RELEASE_DEPENDS if name not in present]
    installer([f"docker.io/{suite}", *own], EngineError, step)


# --- daemon.json ------------------------------------------------------------------------------


def read_daemon_json(path: Path = DAEMON_JSON) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise EngineError(f"Cannot read {path}: {error}.") from None
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise EngineError(f"{path} is not valid JSON ({error}); it was left as it is.",
                          f"Fix {path} by hand (dockerd will not start with it either).") from None
    if not isinstance(config, dict):
        raise EngineError(f"{path} holds no JSON object; it was left as it is.",
                          f"Fix {path} by hand.")
    return config


def configured_store(path: Path = DAEMON_JSON) -> str:
    """The image store daemon.json asks for (without it, dockerd 26 keeps the classic one)."""
    features = read_daemon_json(path).get("features") or {}
    return "containerd" if features.get(SNAPSHOTTER_FEATURE) is True else "classic"


def set_image_store(store: str, path: Path = DAEMON_JSON) -> bool:
    """Make daemon.json ask for ``store``, keeping every other key; False if it already did.

    For the classic store an absent file or feature already means classic: nothing is written.
    """
    if store not in IMAGE_STORES:
        raise EngineError(f"Unknown image store {store!r}: choose classic or containerd.")
    config = read_daemon_json(path)
    if configured_store(path) == store:
        return False
    features = config.get("features")
    config["features"] = {**(features if isinstance(features, dict) else {}),
                          SNAPSHOTTER_FEATURE: store == "containerd"}
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    _write_atomically(path, json.dumps(config, indent=2) + "\n", mode)
    return True


# --- another engine beside the main one -------------------------------------------------------


def system_containerd() -> tuple[int, ...]:
    """The (major, minor) of the containerd on PATH, or () if there is none."""
    containerd = shutil.which("containerd")
    return _version_numbers(binary_version(containerd) or "") if containerd else ()


def _apt_options(home: Path) -> list[str]:
    """apt options for a private apt of ``home``: its own sources, lists and cache, the system's
    dpkg status untouched (nothing is installed)."""
    empty = home / "empty.d"
    return ["-o", f"Dir::Etc::SourceList={home / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={empty}",
            "-o", f"Dir::Etc::Preferences={home / 'preferences'}",
            "-o", f"Dir::Etc::PreferencesParts={empty}",
            "-o", f"Dir::State::Lists={home / 'lists'}",
            "-o", f"Dir::Cache={home / 'cache'}",
            "-o", "Acquire::Languages=none"]


def provide_engine(engine: str, cache: Path = ENGINE_CACHE, on_step: Step | None = None,
                   with_containerd: bool | None = None) -> Path:
    """A folder holding ``engine``'s dockerd and docker-proxy, unpacked from its release's
    docker.io into ``cache``/<engine>/ without installing anything; for SideDaemon(bin_dir=...).

    The system's containerd is used unless it is older than the engine was run against
    (``MIN_CONTAINERD``; ``with_containerd`` forces either way), in which case that release's
    containerd is unpacked too. runc is never in the folder: the system's own stays on PATH
    (trixie's needs a newer glibc than bookworm's). Kept between runs; only the first downloads.
    """
    step = on_step or (lambda _message: None)
    if engine not in SUITES:
        raise EngineError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    suite = SUITES[engine]
    if with_containerd is None:
        with_containerd = system_containerd() < MIN_CONTAINERD[engine]
    home = cache / engine
    bin_dir = home / ("bin-containerd" if with_containerd else "bin")
    home.mkdir(parents=True, exist_ok=True)
    import fcntl  # here: the rest of this module serves learners on any system (graders.lab)

    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _engine_ready(bin_dir, engine, with_containerd):
            return bin_dir
        packages = [f"docker.io/{suite}"] + ([f"containerd/{suite}"] if with_containerd else [])
        step(f"Fetching Engine {engine} ({', '.join(packages)}) into {home}")
        mirror, keyring = debian_mirror(debian_codename())
        for folder in ("empty.d", "lists/partial", "cache/archives/partial", "debs"):
            (home / folder).mkdir(parents=True, exist_ok=True)
        (home / "sources.list").write_text(f"deb [signed-by={keyring}] {mirror} {suite} main\n")
        (home / "preferences").write_text("")
        options = _apt_options(home)
        apt_update(EngineError, step, options)
        debs = home / "debs"
        for old in debs.glob("*.deb"):
            old.unlink()
        apt_download(packages, debs, EngineError, step, options)
        tree = home / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(tree)], f"Unpacking {deb.name}")
        shutil.rmtree(bin_dir, ignore_errors=True)
        bin_dir.mkdir()
        for name in ENGINE_BINARIES + (CONTAINERD_BINARIES if with_containerd else ()):
            source = tree / name
            if not source.exists():
                raise EngineError(f"{source} is missing from the unpacked {suite} packages.")
            (bin_dir / source.name).symlink_to(source)
        if not _engine_ready(bin_dir, engine, with_containerd):
            found = binary_version(bin_dir / "dockerd")
            raise EngineError(f"The unpacked dockerd of {suite} reports {found!r}, not Engine "
                              f"{engine}.", "Remove the cache folder and try again: "
                              f"`rm -rf {home}`.")
        for scratch in ("lists", "cache"):  # the package lists: a refetch updates them anyway
            shutil.rmtree(home / scratch, ignore_errors=True)
        step(f"Engine {engine} unpacked: {bin_dir}")
        return bin_dir


def _engine_ready(bin_dir: Path, engine: str, with_containerd: bool) -> bool:
    if not (bin_dir / "dockerd").exists() or (bin_dir / "runc").exists():
        return False
    if with_containerd and not (bin_dir / "containerd").exists():
        return False
    return engine_of(binary_version(bin_dir / "dockerd")) == engine


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EngineError(f"{what} failed: {error}") from None
    if result.returncode != 0:
        raise EngineError(f"{what} failed:\n{(result.stdout + result.stderr).strip()[-800:]}")


def other_engine(engine: str | None) -> str:
    """The supported engine that is not ``engine`` (26.1 beside 20.10, and the reverse)."""
    return next((other for other in ENGINES if other != engine), CURRENT)


def describe(version: dict, info: dict) -> str:
    """One line naming the engine that answers and its image store, e.g. "Engine 26.1.5+dfsg1
    (API 1.45), containerd 1.6.20~ds1; containerd image store (overlayfs)"."""
    components = {c.get("Name"): c.get("Version") for c in version.get("Components") or []}
    containerd = f", containerd {components['containerd']}" if components.get("containerd") \
        else ""
    return (f"Engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"
            f"{containerd}; {image_store(info)} image store ({info.get('Driver') or '?'})")
