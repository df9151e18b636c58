"""Choosing and providing the Docker Engine: pure decisions and file contents with fakes, the
apt pin checked by apt itself, and `course setup`'s flags.

What claims an engine really works is tests/test_other_engine.py, on a real second daemon.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from graders import cli, daemon, engines
from graders.engines import EngineError, Facts, plan_setup

#: The machine's own apt sources, read (never written) by the pin check.
SYSTEM_SOURCES = engines.APT_SOURCES


@pytest.fixture(autouse=True)
def no_system_apt_files(monkeypatch, tmp_path):
    """No test here may add a source or pin to the machine's apt."""
    monkeypatch.setattr(engines, "APT_SOURCES", tmp_path / "apt-sources.list.d")
    monkeypatch.setattr(engines, "APT_PREFERENCES", tmp_path / "apt-preferences.d")

# --- names and versions -----------------------------------------------------------------------


@pytest.mark.parametrize("text, engine", [
    ("20.10.24+dfsg1", "20.10"), ("26.1.5+dfsg1", "26.1"), ("Docker version 26.1.5, build x",
                                                             "26.1"),
    ("v27.0.3", "27.0"), ("", None), (None, None), ("dev", None)])
def test_engine_of(text, engine):
    assert engines.engine_of(text) == engine


def test_binary_version_reads_dockerd_and_containerd_styles(tmp_path):
    for line, expected in (("Docker version 20.10.24+dfsg1, build 5d6db84", "20.10.24+dfsg1"),
                           ("containerd github.com/containerd/containerd 1.6.20~ds1 "
                            "1.6.20~ds1-1+deb12u3", "1.6.20~ds1")):
        script = tmp_path / "tool"
        script.write_text(f"#!/bin/sh\necho '{line}'\n")
        script.chmod(0o755)
        assert engines.binary_version(script) == expected
    assert engines.binary_version(tmp_path / "absent") is None


def test_other_engine():
    assert engines.other_engine("20.10") == "26.1"
    assert engines.other_engine("26.1") == "20.10"
    assert engines.other_engine(None) == engines.ENGINES[0]


# --- the image store, from `docker info` and in daemon.json ----------------------------------


CLASSIC_INFO = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"],
                                                       ["Supports d_type", "true"]]}
CONTAINERD_INFO = {"Driver": "overlayfs",
                   "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}


def test_image_store_read_from_info():
    assert engines.image_store(CLASSIC_INFO) == "classic"
    assert engines.image_store(CONTAINERD_INFO) == "containerd"
    assert engines.image_store({"Driver": "vfs", "DriverStatus": None}) == "classic"
    assert engines.image_store({}) == "classic"


def test_describe_names_engine_api_containerd_and_store():
    version = {"Version": "26.1.5+dfsg1", "ApiVersion": "1.45",
               "Components": [{"Name": "Engine", "Version": "26.1.5+dfsg1"},
                              {"Name": "containerd", "Version": "1.6.20~ds1"}]}
    assert engines.describe(version, CONTAINERD_INFO) == (
        "Engine 26.1.5+dfsg1 (API 1.45), containerd 1.6.20~ds1; containerd image store "
        "(overlayfs)")
    assert engines.describe({"Version": "20.10.24", "ApiVersion": "1.41"}, CLASSIC_INFO) == (
        "Engine 20.10.24 (API 1.41); classic image store (overlay2)")


def test_containerd_store_merges_into_daemon_json(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"log-driver": "json-file", "features": {"buildkit": True},
                                "registry-mirrors": ["http://mirror:5000"]}))
    path.chmod(0o600)
    assert engines.set_image_store("containerd", path) is True
    assert json.loads(path.read_text()) == {
        "log-driver": "json-file", "registry-mirrors": ["http://mirror:5000"],
        "features": {"buildkit": True, "containerd-snapshotter": True}}
    assert path.stat().st_mode & 0o777 == 0o600
    assert engines.configured_store(path) == "containerd"
    assert engines.set_image_store("containerd", path) is False  # already so: untouched
    assert engines.set_image_store("classic", path) is True
    assert json.loads(path.read_text())["features"] == {"buildkit": True,
                                                        "containerd-snapshotter": False}
    assert json.loads(path.read_text())["log-driver"] == "json-file"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_classic_store_needs_no_file_and_a_new_file_is_created(tmp_path):
    path = tmp_path / "etc-docker" / "daemon.json"
    assert engines.configured_store(path) == "classic"
    assert engines.set_image_store("classic", path) is False
    assert not path.exists()
    assert engines.set_image_store("containerd", path) is True
    assert json.loads(path.read_text()) == {"features": {"containerd-snapshotter": True}}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_broken_daemon_json_is_reported_and_left_alone(tmp_path, text):
    path = tmp_path / "daemon.json"
    path.write_text(text)
    with pytest.raises(EngineError, match=str(path)):
        engines.set_image_store("containerd", path)
    assert path.read_text() == text


def test_empty_daemon_json_counts_as_empty(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("")
    assert engines.set_image_store("containerd", path)
    assert json.loads(path.read_text()) == {"features": {"containerd-snapshotter": True}}


# --- the apt source and pin for the other release --------------------------------------------


def test_source_is_deb822_for_main_of_that_release_only():
    text = engines.source_text("trixie", "http://mirror.local/debian", "/k.gpg")
    fields = dict(line.split(": ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert fields == {"Types": "deb", "URIs": "http://mirror.local/debian", "Suites": "trixie",
                      "Components": "main", "Signed-By": "/k.gpg"}


def test_pin_keeps_the_whole_release_at_100_or_lower():
    text = engines.pin_text("trixie")
    fields = dict(line.split(": ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert fields == {"Package": "*", "Pin": "release n=trixie", "Pin-Priority": "100"}
    assert int(fields["Pin-Priority"]) <= 100


def test_mirror_and_keyring_follow_the_systems_own_release(tmp_path):
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\n# a comment: inside\nURIs: http://proxy:3142/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\n"
        "Signed-By: /etc/keys/local.gpg\n")
    none = tmp_path / "none.list"
    assert engines.debian_mirror("bookworm", sources, none) == (
        "http://proxy:3142/debian", "/etc/keys/local.gpg")
    assert engines.debian_mirror("trixie", sources, none) == (
        engines.DEFAULT_MIRROR, engines.DEBIAN_KEYRING)
    listing = tmp_path / "sources.list"
    listing.write_text("# old style\ndeb [arch=amd64] http://ftp.de.debian.org/debian trixie "
                       "main\n")
    assert engines.debian_mirror("trixie", tmp_path / "absent", listing) == (
        "http://ftp.de.debian.org/debian", engines.DEBIAN_KEYRING)


def test_written_source_and_pin(tmp_path):
    sources, preferences = tmp_path / "sources.list.d", tmp_path / "preferences.d"
    source, pin = engines.write_apt_source("trixie", sources, preferences, codename="bookworm")
    assert source == sources / "docker-course-trixie.sources"
    assert pin == preferences / "docker-course-trixie.pref"
    assert "Suites: trixie" in source.read_text()
    assert pin.read_text() == engines.pin_text("trixie")
    assert oct(source.stat().st_mode & 0o777) == oct(0o644)


def test_codename_from_os_release(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
                       'VERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    assert engines.debian_codename(release) == "bookworm"
    release.write_text('ID=debian\nVERSION_ID="13"\n')
    assert engines.debian_codename(release) == "trixie"
    release.write_text('ID=ubuntu\nVERSION_CODENAME=noble\n')
    assert engines.debian_codename(release) is None
    assert engines.debian_codename(tmp_path / "absent") is None


@pytest.mark.parametrize("codename, engine, asked", [
    ("bookworm", "20.10", ["docker.io/bookworm"]), ("bookworm", "26.1", ["docker.io/trixie"]),
    ("trixie", "26.1", ["docker.io/trixie"]), ("trixie", "20.10", ["docker.io/bookworm"])])
def test_install_asks_apt_for_that_releases_docker_io_only(tmp_path, codename, engine, asked):
    calls = []
    engines.install_engine(engine, installer=lambda names, *_: calls.append(names),
                           codename=codename, installed=lambda names: set(names))
    assert calls == [asked]
    added = sorted(p.name for p in tmp_path.glob("apt-*/*"))
    suite = engines.SUITES[engine]
    assert added == ([] if codename == suite else
                     [f"docker-course-{suite}.pref", f"docker-course-{suite}.sources"])


def test_dependencies_not_installed_yet_are_named_so_they_come_from_the_own_release():
    calls = []
    engines.install_engine("26.1", installer=lambda names, *_: calls.append(names),
                           codename="bookworm", installed=lambda names: {"iptables"})
    assert calls == [["docker.io/trixie", "containerd", "runc", "tini"]]


def test_install_off_debian(monkeypatch):
    calls = []
    monkeypatch.setattr(engines, "debian_codename", lambda: None)
    engines.install_engine("26.1", installer=lambda names, *_: calls.append(names), exact=False)
    assert calls == [["docker.io"]]
    with pytest.raises(EngineError, match="not Debian"):
        engines.install_engine("26.1", installer=pytest.fail)


def _apt_is_debian(codename: str) -> bool:
    return shutil.which("apt-get") is not None and engines.debian_codename() == codename


@pytest.mark.skipif(os.geteuid() != 0 or not _apt_is_debian("bookworm"),
                    reason="needs root (apt-get update into a private lists folder) on Debian 12")
def test_pin_installs_only_docker_io_from_trixie_on_bookworm(monkeypatch):
    """apt itself, simulating with the system's sources plus ours: docker.io/trixie brings no
    trixie runc, containerd or libc, and none of those has trixie's version as candidate."""
    home = engines.ENGINE_CACHE.parent / "pin-check"  # kept: a later update is a quick check
    parts, prefs = home / "sources.list.d", home / "preferences.d"
    shutil.rmtree(parts, ignore_errors=True)
    for folder in (parts, home / "lists/partial", home / "cache/archives/partial"):
        folder.mkdir(parents=True, exist_ok=True)
    for path in SYSTEM_SOURCES.glob("*.sources"):
        if not path.name.startswith("docker-course-"):
            shutil.copy(path, parts)
    monkeypatch.setattr(engines, "APT_SOURCES", parts)
    monkeypatch.setattr(engines, "APT_PREFERENCES", prefs)
    asked: list[list[str]] = []
    engines.install_engine("26.1", installer=lambda names, *_: asked.append(names),
                           codename="bookworm")
    [packages] = asked
    apt = ["-o", f"Dir::Etc::SourceParts={parts}", "-o", f"Dir::Etc::PreferencesParts={prefs}",
           "-o", f"Dir::State::Lists={home}/lists", "-o", f"Dir::Cache={home}/cache",
           "-o", "Acquire::Languages=none"]
    update = subprocess.run(["apt-get", *apt, "update"], capture_output=True, text=True,
                            timeout=300)
    if update.returncode != 0:
        pytest.skip(f"the Debian mirror does not answer: {update.stderr[-300:]}")
    # --reinstall: where docker.io/trixie is already in place the simulation still shows it.
    done = subprocess.run(["apt-get", *apt, "-s", "install", "--reinstall", *packages],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    installs = [line for line in done.stdout.splitlines() if line.startswith("Inst ")]
    from_trixie = {line.split()[1] for line in installs if "Debian:13" in line}
    assert "docker.io" in from_trixie
    assert from_trixie <= {"docker.io", "docker-cli", "docker-buildx"}, installs
    assert not {"runc", "containerd", "libc6"} & {line.split()[1] for line in installs}
    policy = subprocess.run(["apt-cache", *apt, "policy", "runc", "containerd", "libc6",
                             "docker.io"], capture_output=True, text=True, timeout=120).stdout
    origins = _candidate_origins(policy)
    assert set(origins) == {"runc", "containerd", "libc6", "docker.io"}, policy
    if engines.installed_engine() == "26.1":
        origins.pop("docker.io")  # trixie's is in place already: its candidate is itself
    for package, where in origins.items():  # docker.io: asked for by name only, never upgraded
        assert where and not any(" trixie/" in line for line in where), (package, policy)


def _candidate_origins(policy: str) -> dict[str, list[str]]:
    """For each package in ``apt-cache policy`` output, the origin lines of its candidate."""
    found: dict[str, list[str]] = {}
    for block in re.split(r"^(?=\S+:$)", policy, flags=re.M):
        lines = block.splitlines()
        if not lines or not lines[0].endswith(":"):
            continue
        candidate = next(line.split()[1] for line in lines if "Candidate:" in line)
        origins, inside = [], False
        for line in lines:
            words = line.replace("***", "").split()
            if len(words) == 2 and words[0] == candidate and not line.startswith("  Cand"):
                inside = True
            elif inside and len(words) > 2 and words[0].isdigit():
                origins.append(line.strip())
            elif inside:
                inside = len(words) != 2
        found[lines[0][:-1]] = origins
    return found


# --- what `course setup` decides ---------------------------------------------------------------


@pytest.mark.parametrize("engine, facts, expected", [
    # auto: whatever runs, else what is installed, else the current engine is installed
    ("auto", Facts(running="20.10", installed="20.10"), dict(engine="20.10")),
    ("auto", Facts(installed="20.10"), dict(engine="20.10", start=True)),
    ("auto", Facts(), dict(engine="26.1", install=True, start=True)),
    ("auto", Facts(running="24.0", installed="24.0"), dict(engine="24.0")),
    # the engine asked for is there
    ("20.10", Facts(running="20.10", installed="20.10"), dict(engine="20.10")),
    ("26.1", Facts(installed="26.1"), dict(engine="26.1", start=True)),
    # not running: install the other one, then start
    ("26.1", Facts(installed="20.10"), dict(engine="26.1", install=True, start=True)),
    ("20.10", Facts(), dict(engine="20.10", install=True, start=True)),
    # running, started by course: stop, install, start
    ("26.1", Facts(running="20.10", installed="20.10", ours=True),
     dict(engine="26.1", stop=True, install=True, start=True)),
    # running the old one though the new one is installed already: only a restart
    ("26.1", Facts(running="20.10", installed="26.1", ours=True),
     dict(engine="26.1", stop=True, start=True)),
])
def test_plan(engine, facts, expected):
    assert plan_setup(engine, None, facts) == engines.Plan(**expected)


def test_plan_refuses_to_replace_a_daemon_course_did_not_start():
    plan = plan_setup("26.1", None, Facts(running="20.10", installed="20.10", ours=False))
    assert plan.refuse and not (plan.stop or plan.install or plan.start)
    assert "Engine 20.10 is running here and was not started by `course`" in plan.refuse
    assert "--engine auto" in plan.remedy and "--engine 20.10" in plan.remedy


def test_plan_refuses_to_change_someone_elses_endpoint():
    facts = Facts(running="20.10", local=False, via="DOCKER_HOST=tcp://far:2375", ours=True)
    plan = plan_setup("26.1", None, facts)
    assert plan.refuse and "DOCKER_HOST=tcp://far:2375" in plan.refuse
    assert "DOCKER_HOST" in plan.remedy
    assert plan_setup("20.10", None, facts) == engines.Plan("20.10")
    assert plan_setup("26.1", None, Facts(local=False)) == engines.Plan("26.1")


@pytest.mark.parametrize("store, facts, expected", [
    ("containerd", Facts(running="26.1", running_store="containerd", installed="26.1"),
     dict(engine="26.1")),
    ("containerd", Facts(running="26.1", running_store="classic", installed="26.1", ours=True),
     dict(engine="26.1", stop=True, write_store="containerd", start=True)),
    ("containerd", Facts(installed="26.1"),
     dict(engine="26.1", write_store="containerd", start=True)),
    ("classic", Facts(running="26.1", running_store="containerd", installed="26.1", ours=True),
     dict(engine="26.1", stop=True, write_store="classic", start=True)),
    ("containerd", Facts(running="20.10", running_store="classic", installed="20.10",
                         ours=True),
     dict(engine="26.1", stop=True, install=True, write_store="containerd", start=True)),
])
def test_plan_image_store(store, facts, expected):
    engine = "auto" if expected == dict(engine="26.1") else "26.1"
    assert plan_setup(engine, store, facts) == engines.Plan(**expected)


def test_plan_image_store_of_a_daemon_course_did_not_start_is_refused():
    plan = plan_setup("26.1", "containerd", Facts(running="26.1", running_store="classic",
                                                  installed="26.1"))
    assert plan.refuse and "containerd image store" in plan.refuse
    assert "without --image-store" in plan.remedy


def test_plan_containerd_store_needs_26():
    for facts in (Facts(running="20.10", installed="20.10", ours=True), Facts()):
        plan = plan_setup("20.10", "containerd", facts)
        assert plan.refuse and "needs Engine 26.1" in plan.refuse
        assert "--engine 26.1" in plan.remedy
    assert plan_setup("auto", "containerd", Facts(installed="20.10")).refuse
    assert plan_setup("auto", "containerd", Facts()) == engines.Plan(
        "26.1", install=True, write_store="containerd", start=True)


def test_plan_unknown_engine():
    assert "Unknown engine" in plan_setup("19.03", None, Facts()).refuse


# --- ensure_daemon carrying out a plan, with fakes --------------------------------------------


class FakeClient:
    def __init__(self, version: str, info: dict) -> None:
        self._version, self._info = version, info

    def version(self):
        return {"Version": self._version, "ApiVersion": "1.41"}

    def info(self):
        return self._info

    def close(self):
        pass


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A local root Linux machine where the daemon answers with Engine 20.10 (pid 4242); every
    action ensure_daemon could take is recorded instead of done."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setattr(daemon, "daemon_endpoint",
                        lambda: "default socket unix:///var/run/docker.sock")
    monkeypatch.setattr(daemon.sys, "platform", "linux")
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 0)
    state = {"answers": True, "ours": False, "installed": "20.10", "running": "20.10"}
    actions: list[tuple] = []
    monkeypatch.setattr(daemon, "_probe", lambda timeout: None if state["answers"]
                        else daemon.DaemonUnavailable("down"))
    monkeypatch.setattr(daemon, "docker_client",
                        lambda timeout=60: FakeClient(state["running"], CLASSIC_INFO))
    monkeypatch.setattr(daemon, "running_dockerd", lambda: (4242 if state["answers"] else None,
                                                            None))
    monkeypatch.setattr(daemon, "started_by_course", lambda pid: state["ours"])
    monkeypatch.setattr(engines, "installed_engine", lambda: state["installed"])

    def stop(pid):
        actions.append(("stop", pid))
        state["answers"] = False

    def install(engine, step, installer=None, exact=True):
        actions.append(("install", engine))
        state["installed"] = engine

    def start(log_path, config_path=engines.DAEMON_JSON):
        actions.append(("start", config_path))
        state["answers"], state["running"] = True, state["installed"]
        return subprocess.Popen(["sleep", "0"])

    monkeypatch.setattr(daemon, "stop_dockerd", stop)
    monkeypatch.setattr(engines, "install_engine", install)
    monkeypatch.setattr(daemon, "_start_dockerd", start)
    monkeypatch.setattr(daemon, "apt_install", pytest.fail)
    return state, actions, tmp_path / "daemon.json"


def test_setup_refuses_another_engine_on_a_daemon_it_did_not_start(machine, tmp_path):
    state, actions, config = machine
    with pytest.raises(EngineError, match="not started by `course`") as raised:
        daemon.ensure_daemon(tmp_path / "dockerd.log", engine="26.1", config_path=config)
    assert actions == []
    assert "--engine auto" in raised.value.remedy
    status = daemon.ensure_daemon(tmp_path / "dockerd.log", engine="20.10", config_path=config)
    assert status.how == "already running" and status.engine == "20.10" and actions == []


def test_setup_replaces_the_engine_of_a_daemon_it_started(machine, tmp_path):
    state, actions, config = machine
    state["ours"] = True
    steps: list[str] = []
    status = daemon.ensure_daemon(tmp_path / "dockerd.log", engine="26.1", config_path=config,
                                  on_step=steps.append)
    assert actions == [("stop", 4242), ("install", "26.1"), ("start", config)]
    assert status.how == "started" and status.installed and status.replaced == "20.10"
    assert "replaced the Engine 20.10 dockerd" in status.summary
    assert "docker.io 26.1 installed" in status.summary
    assert any("Stopping dockerd (pid 4242" in step for step in steps)
    assert not config.exists()  # no image store asked for: daemon.json untouched


def test_setup_writes_the_image_store_before_starting(machine, tmp_path):
    state, actions, config = machine
    state.update(ours=True, installed="26.1", running="26.1")
    daemon.ensure_daemon(tmp_path / "dockerd.log", engine="26.1", image_store="containerd",
                         config_path=config)
    assert actions == [("stop", 4242), ("start", config)]
    assert json.loads(config.read_text()) == {"features": {"containerd-snapshotter": True}}


def test_setup_installs_and_starts_when_nothing_runs(machine, tmp_path):
    state, actions, config = machine
    state.update(answers=False)
    status = daemon.ensure_daemon(tmp_path / "dockerd.log", engine="26.1", config_path=config)
    assert actions == [("install", "26.1"), ("start", config)]
    assert status.how == "started" and status.engine == "26.1"


def test_setup_without_root_changes_nothing(machine, monkeypatch, tmp_path):
    state, actions, config = machine
    state["ours"] = True
    monkeypatch.setattr(daemon.os, "geteuid", lambda: 1000)
    with pytest.raises(daemon.DaemonUnavailable, match="only root"):
        daemon.ensure_daemon(tmp_path / "dockerd.log", engine="26.1", config_path=config)
    assert actions == []


# --- knowing a dockerd course started, and stopping it ----------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_started_by_course_reads_the_mark_in_the_process_environment():
    marked = subprocess.Popen(["sleep", "30"], env={**os.environ, daemon.STARTED_MARK: "x.log"})
    plain = subprocess.Popen(["sleep", "30"],
                             env={k: v for k, v in os.environ.items()
                                  if k != daemon.STARTED_MARK})
    try:
        assert daemon.started_by_course(marked.pid)
        assert not daemon.started_by_course(plain.pid)
        daemon.stop_dockerd(plain.pid, timeout=10)  # a zombie (not reaped yet) counts as gone
        assert not daemon._alive(plain.pid)
    finally:
        for process in (marked, plain):
            process.kill()
            process.wait()
    assert not daemon.started_by_course(marked.pid)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def provisioned(monkeypatch):
    from graders import provision

    calls = []

    def fake(log_dir, on_step=None, engine="auto", image_store=None):
        calls.append((engine, image_store))
        return provision.Provisioned(
            daemon.DaemonStatus("already running", "default socket x", 0.1), [],
            "Engine 20.10.24 (API 1.41); classic image store (overlay2)")

    monkeypatch.setattr(provision, "provision", fake)
    return calls


def test_setup_flags_and_environment(provisioned, monkeypatch):
    runner = CliRunner()
    monkeypatch.delenv("COURSE_ENGINE", raising=False)
    monkeypatch.delenv("COURSE_IMAGE_STORE", raising=False)
    result = runner.invoke(cli.main, ["setup"])
    assert result.exit_code == 0, result.output
    assert "Engine 20.10.24 (API 1.41); classic image store (overlay2)" in result.output
    assert runner.invoke(cli.main, ["setup", "--engine", "26.1", "--image-store",
                                    "containerd"]).exit_code == 0
    monkeypatch.setenv("COURSE_ENGINE", "20.10")
    assert runner.invoke(cli.main, ["setup"]).exit_code == 0
    assert runner.invoke(cli.main, ["setup", "--engine", "auto"]).exit_code == 0
    assert provisioned == [("auto", None), ("26.1", "containerd"), ("20.10", None),
                           ("auto", None)]
    bad = runner.invoke(cli.main, ["setup", "--engine", "19.03"])
    assert bad.exit_code == 2 and "19.03" in bad.output


def test_setup_refusal_is_one_error_line(monkeypatch):
    from graders import provision

    def refuse(*_args, **_kwargs):
        raise EngineError("Engine 20.10 is running here and was not started by `course`.",
                          "Keep it.")

    monkeypatch.setattr(provision, "provision", refuse)
    result = CliRunner().invoke(cli.main, ["setup", "--engine", "26.1"])
    assert result.exit_code == 1
    assert "ERROR Engine 20.10 is running here" in result.output and "Keep it." in result.output
    assert "Traceback" not in result.output


def test_provide_engine_rejects_unknown(tmp_path):
    with pytest.raises(EngineError, match="Unknown engine"):
        engines.provide_engine("1.0", cache=tmp_path)


def test_a_ready_engine_folder_is_reused_without_apt(monkeypatch, tmp_path):
    """A cached bin folder whose dockerd reports the engine is used as it is; one with a runc
    in it is not (the system's runc must be the one on PATH)."""
    bin_dir = tmp_path / "26.1" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "dockerd"
    fake.write_text("#!/bin/sh\necho 'Docker version 26.1.5+dfsg1, build 411e817'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(engines, "apt_update", pytest.fail)
    assert engines.provide_engine("26.1", cache=tmp_path, with_containerd=False) == bin_dir
    (bin_dir / "runc").write_text("")
    monkeypatch.setattr(engines, "debian_mirror", lambda _codename: pytest.fail("refetched"))
    with pytest.raises(pytest.fail.Exception, match="refetched"):
        engines.provide_engine("26.1", cache=tmp_path, with_containerd=False)


def test_cached_engine_paths_are_per_engine():
    assert Path(engines.ENGINE_CACHE).is_absolute()
    names = [Path(b).name for b in engines.ENGINE_BINARIES + engines.CONTAINERD_BINARIES]
    assert "runc" not in names


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_dockerd_course_starts_is_marked_and_can_be_stopped(monkeypatch, tmp_path):
    """The real start: a stand-in `dockerd` first on PATH, started by _start_dockerd, carries the
    mark in its environment, so stop_dockerd may end it; one started otherwise does not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dockerd"
    script.write_text(f"#!/bin/sh\ntrap 'exit 0' TERM\ntouch {tmp_path}/ready.$$\n"
                      "while :; do sleep 0.1; done\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(daemon.STARTED_MARK, raising=False)
    ours = daemon._start_dockerd(tmp_path / "dockerd.log")
    theirs = subprocess.Popen(["dockerd"], start_new_session=True)
    try:
        # Each has run its script: its environment is in place (a process in the middle of
        # its exec shows none), and a TERM before the trap is set would end it with -15, not 0.
        for process in (ours, theirs):
            _wait_for(tmp_path / f"ready.{process.pid}")
        assert daemon.started_by_course(ours.pid)
        assert not daemon.started_by_course(theirs.pid)
        began = time.monotonic()
        daemon.stop_dockerd(ours.pid, timeout=10)
        assert ours.wait(timeout=5) == 0 and time.monotonic() - began < 5
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait()


def _wait_for(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_the_system_engine_is_the_releases_own_docker_io():
    assert engines.system_engine("bookworm") == "20.10"
    assert engines.system_engine("trixie") == "26.1"
    assert engines.system_engine("noble") == "auto"
