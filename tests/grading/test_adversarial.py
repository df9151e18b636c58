"""Adversarial submissions graded in one batch beside honest ones (issue 8's suite).

Each adversary hands in the honest solution plus one appended cell that tries one thing
against the daemon. The whole class is graded once, on four workers, through the gatekeeper
that grading starts for every submission; the tests then read what happened: honest grades
unchanged, each attack refused (the learner sees the rule's name) or contained by a limit,
objects of another submission and the course images untouched, nothing left on the daemon.

A fork bomb runs inside a container, where the gatekeeper's pids limit must hold, and in the
kernel itself only when the kernel is confined (grading as root: its own user with a process
limit); an unconfined kernel has no limit, and the bomb would take the machine down.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time

import builders as b
import docker
import pytest
from conftest import daemon_objects
from sandbox_judge import container_violations

from graders import confinement
from graders.gatekeeper import Limits
from graders.grading import GradingOptions, grade_assignment
from graders.namespace import Namespace
from graders.outcome import Status
from graders.release import generate_release
from graders.settings import COURSE_IMAGES, NAMESPACE_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]

OPTIONS = GradingOptions(cell_timeout=20, submission_timeout=80, feedback=False, workers=4)
FULL = 5.0
HONEST = {"honest-a": FULL, "honest-b": FULL, "honest-partial": 3.0}
ATTACK = "attack"
#: Host ports the squatter takes: far from the daemon's ephemeral range and from the fixed
#: ports the course notebooks use, so other daemons on this host are not disturbed.
SQUAT = range(47100, 47140)
RESULT = re.compile(r"^RESULT (.*)$", re.M)
#: Run before every attack: if the kernel was handed the daemon itself, the attack must not run
#: (pruning everything would delete the course images of whoever shares this daemon).
GUARD = """
import os
if os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") in (
        "unix://" + @REAL_SOCKET@, "unix:///var/run/docker.sock"):
    raise RuntimeError("UNGUARDED: the kernel was given the daemon itself, not a gatekeeper")
"""

ATTACKS = {
    "privileged": """
client.containers.run(BUSYBOX_IMAGE, ["true"], privileged=True, labels=LABELS, remove=True)
""",
    "bind-root": """
import docker
for how, kwargs in [
    ("volumes", {"volumes": {"/": {"bind": "/host", "mode": "rw"}}}),
    ("mounts", {"mounts": [docker.types.Mount("/host", "/", type="bind")]}),
]:
    try:
        client.containers.run(BUSYBOX_IMAGE, ["ls", "/host"], labels=LABELS, remove=True,
                              **kwargs)
        print(how, "MOUNTED")
    except docker.errors.APIError as error:
        print(how, error.explanation)
""",
    "bind-socket": """
import docker
for socket in ["/var/run/docker.sock", "/run", @REAL_SOCKET@]:
    try:
        client.containers.run(BUSYBOX_IMAGE, ["ls", "/d"], labels=LABELS, remove=True,
                              volumes={socket: {"bind": "/d"}})
        print(socket, "MOUNTED")
    except docker.errors.APIError as error:
        print(socket, error.explanation)
""",
    "pid-host": """
client.containers.run(BUSYBOX_IMAGE, ["ps"], pid_mode="host", labels=LABELS, remove=True)
""",
    "delete-all": """
import json
removed = []
for c in client.containers.list(all=True):
    removed.append(c.name)
    c.remove(force=True)
print("RESULT", json.dumps(removed))
""",
    "prune-all": """
import json
client.containers.prune()
client.images.prune(filters={"dangling": False})
client.volumes.prune()
client.networks.prune()
print("RESULT", json.dumps("pruned"))
""",
    "kill-others": """
import docker
targets = @TARGETS@
for kind, name in targets:
    try:
        if kind == "container":
            c = client.containers.get(name)
            c.stop(timeout=1)
            c.remove(force=True)
        elif kind == "volume":
            client.volumes.get(name).remove(force=True)
        elif kind == "network":
            client.networks.get(name).remove()
        else:
            client.images.remove(name, force=True)
        print(kind, name, "REMOVED")
    except docker.errors.NotFound as error:
        print(kind, name, "not found")
    except docker.errors.APIError as error:
        print(kind, name, error.explanation)
""",
    "fork-bomb": """
import json, time
bomb = client.containers.run(BUSYBOX_IMAGE, ["sh", "-c", "b() { b | b & }; b; exec sleep 600"],
                             labels=LABELS, detach=True)
time.sleep(8)
for attempt in range(10):  # a busy daemon's first sample can come without pids_stats
    pids = bomb.stats(stream=False)["pids_stats"].get("current")
    if pids:
        break
    time.sleep(1)
print("RESULT", json.dumps({"pids": pids, "limit": bomb.attrs["HostConfig"]["PidsLimit"]}))
""",
    "memory-bomb": """
import json
bomb = client.containers.run(
    BUSYBOX_IMAGE, ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while :; do a=$a$a; done"],
    labels=LABELS, detach=True)
status = bomb.wait(timeout=15)
bomb.reload()
print("RESULT", json.dumps({"exit": status["StatusCode"],
                            "oom": bomb.attrs["State"]["OOMKilled"],
                            "limit": bomb.attrs["HostConfig"]["Memory"]}))
""",
    "many-containers": """
import json
made = []
try:
    for i in range(200):
        made.append(client.containers.create(BUSYBOX_IMAGE, ["true"], labels=LABELS))
finally:
    print("RESULT", json.dumps(len(made)))
""",
    "log-flood": """
import json
flood = client.containers.run(BUSYBOX_IMAGE, ["sh", "-c", "while :; do echo flood; done"],
                              labels=LABELS, detach=True)
print("RESULT", json.dumps(flood.attrs["HostConfig"]["LogConfig"]), flush=True)
for _ in flood.logs(stream=True, follow=True):
    pass
""",
    "port-squatter": """
import json
squat = client.containers.run(BUSYBOX_IMAGE, ["sleep", "300"], labels=LABELS, detach=True,
                              ports={f"{p}/tcp": ("127.0.0.1", p) for p in @SQUAT@})
squat.reload()
print("RESULT", json.dumps(len(squat.ports)))
""",
    "unmasked-proc": """
# Docker masks /proc/kcore and friends and makes /proc/sys and /proc/sysrq-trigger read-only;
# the raw API lets a request empty both lists (writing sysrq-trigger could reboot the host).
created = client.api._post_json(client.api._url("/containers/create"), data={
    "Image": BUSYBOX_IMAGE, "Cmd": ["true"], "Labels": LABELS,
    "HostConfig": {"MaskedPaths": [], "ReadonlyPaths": []}})
print("CREATED", client.api._result(created, True)["Id"])
""",
    "seccomp-allow-all": """
# An inline seccomp profile that allows every system call: unconfined in all but name.
client.containers.run(BUSYBOX_IMAGE, ["true"], labels=LABELS, remove=True,
                      security_opt=['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}'])
print("STARTED")
""",
    "build-forks": """
# A bounded stand-in for a fork bomb in a build step: 400 sleeping processes tried; the inner
# shell counts those it started and gives up at the limit (the count is read with builtins, as
# no fork succeeds while the sleepers live).
import io, json, re, docker
# The namespace in the step and nocache: a step taken from the build cache would not run.
dockerfile = (f"FROM {BUSYBOX_IMAGE}\\n"
              f"RUN echo {NAMESPACE}; sh -c 'n=0; for i in $(seq 400); do sleep 5 & "
              "n=$((n+1)); echo $n > /count; done' 2>/dev/null; read n < /count; "
              "echo PROCS $n; exit 0\\n")
try:
    _, log = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True,
                                 forcerm=True, nocache=True, tag=f"{NAMESPACE}-forks:1")
    text = "".join(chunk.get("stream", "") for chunk in log)
    print("RESULT", json.dumps(int(re.search(r"PROCS (\\d+)", text).group(1))))
except docker.errors.BuildError as error:
    print("RESULT", json.dumps(0), error)
""",
    "bypass": """
# The gatekeeper only guards the socket it is given: can the kernel reach the daemon itself?
import json, docker
try:
    real = docker.DockerClient(base_url="unix://" + @REAL_SOCKET@, timeout=10)
    seen = [c.name for c in real.containers.list(all=True)]
    print("RESULT", json.dumps(@VICTIM@ in seen))
except Exception as error:
    print(type(error).__name__, error)
    print("RESULT", json.dumps(False))
""",
    "smuggle": """
# Raw bytes on the gatekeeper's own socket: a harmless request, then on the same connection a
# privileged create spelled in lower case with a bind of / (the daemon reads both forms).
import json, os, socket
path = os.environ["DOCKER_HOST"].removeprefix("unix://")
body = json.dumps({"image": BUSYBOX_IMAGE, "cmd": ["true"], "labels": LABELS,
                   "hostconfig": {"privileged": True, "binds": ["/:/host"]}})
requests = (b"GET /_ping HTTP/1.1\\nHost: x\\n\\n"
            + (f"POST /v1.41/containers/create?name={NAMESPACE}-smuggled HTTP/1.1\\r\\n"
               f"Host: x\\r\\nContent-Type: application/json\\r\\n"
               f"Content-Length: {len(body)}\\r\\n\\r\\n{body}").encode())
with socket.socket(socket.AF_UNIX) as raw:
    raw.settimeout(10)
    raw.connect(path)
    raw.sendall(requests)
    answers = b""
    raw.settimeout(3)
    try:
        while chunk := raw.recv(65536):
            answers += chunk
    except OSError:
        pass
print("RESULT", json.dumps(answers.decode("latin-1")[-400:]))
""",
    "setuid-scratch": """
# A root container leaves a setuid-root copy of sh in the scratch folder it binds; the kernel's
# own user runs it and asks for its effective uid.
import json, os, subprocess
scratch = SCRATCH_DIR
client.containers.run(BUSYBOX_IMAGE, ["sh", "-c", "cp /bin/busybox /s/sh; chmod 4755 /s/sh"],
                      volumes={scratch: {"bind": "/s"}}, labels=LABELS, remove=True)
done = subprocess.run([os.path.join(scratch, "sh"), "-c", "id -u"], capture_output=True,
                      text=True)
print("RESULT", json.dumps({"uid": os.getuid(), "euid": done.stdout.split()[:1],
                            "err": done.stderr[-200:]}))
""",
    "symlink-swap": """
# Bind a folder of scratch, then swap it for a symlink to /etc before starting: the container
# must still see the folder that was checked.
import json, os
scratch = SCRATCH_DIR
os.makedirs(os.path.join(scratch, "data"), exist_ok=True)
swap = client.containers.create(BUSYBOX_IMAGE, ["sh", "-c", "ls /d; head -c 40 /d/shadow"],
                                volumes={os.path.join(scratch, "data"): {"bind": "/d"}},
                                labels=LABELS)
os.rename(os.path.join(scratch, "data"), os.path.join(scratch, "checked"))
os.symlink("/etc", os.path.join(scratch, "data"))
swap.start()
swap.wait(timeout=15)
print("RESULT", json.dumps(swap.logs().decode(errors="replace")))
""",
    "forged-build-log": """
# A RUN step prints what the builder prints, naming the bystander's image, hoping the gatekeeper
# takes it for one of the build's own; then tries to read and delete that image.
import io, json, docker
victim = @VICTIM_IMAGE_ID@.removeprefix("sha256:")[:12]
dockerfile = (f"FROM {BUSYBOX_IMAGE}\\nRUN echo {NAMESPACE}; echo ' ---> {victim}'; "
              f"echo 'Successfully built {victim}'\\n")
client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{NAMESPACE}-forged:1")
tried = []
for attempt in (lambda: client.images.get(victim),
                lambda: client.images.remove(victim, force=True)):
    try:
        attempt()
        tried.append("DONE")
    except docker.errors.APIError as error:
        tried.append(error.explanation)
print("RESULT", json.dumps(tried))
""",
    "read-course": """
# The kernel looks for the course's solutions: the repository's .git, source/ and examples/.
import json, os
import graders
root = os.path.dirname(os.path.dirname(graders.__file__))
found = {}
for name in (".git/HEAD", "source", "examples", "tests"):
    try:
        path = os.path.join(root, name)
        found[name] = open(path).read(20) if os.path.isfile(path) else os.listdir(path)
    except OSError as error:
        found[name] = type(error).__name__
print("RESULT", json.dumps(found))
""",
    "kernel-forks": """
# Fork in the kernel itself until refused, only where a process limit is set (a confined
# kernel); the children sleep and are killed with the submission's user at the end.
import json, os, resource, time
soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
if soft == resource.RLIM_INFINITY or soft > 1024:
    print("RESULT", json.dumps({"skipped": soft}))
else:
    children, refused = 0, ""
    try:
        while children < 2 * soft:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
    except OSError as error:
        refused = error.strerror
    print("RESULT", json.dumps({"children": children, "limit": soft, "refused": refused}))
""",
    "kills-kernel": """
import os
client.containers.run(BUSYBOX_IMAGE, ["sleep", "300"], labels=LABELS, detach=True)
client.volumes.create(labels=LABELS)
os.kill(os.getpid(), 9)
""",
    "never-ends": """
import time
client.containers.run(BUSYBOX_IMAGE, ["sleep", "300"], labels=LABELS, detach=True)
while True:
    time.sleep(1)
""",
}


def _namespace(root, student: str) -> str:
    return Namespace.for_submission(b.SANDBOX, student, salt=str(root.resolve())).value


def _victims(client, namespace: str) -> dict[str, str]:
    """Objects of a submission not in this batch (graded elsewhere), made before the batch."""
    labels = {NAMESPACE_LABEL: namespace}
    running = client.containers.run(COURSE_IMAGES[0], ["sleep", "600"], labels=labels,
                                    name=f"{namespace}-victim", detach=True)
    stopped = client.containers.create(COURSE_IMAGES[0], ["true"], labels=labels,
                                       name=f"{namespace}-stopped")
    volume = client.volumes.create(f"{namespace}-victim", labels=labels)
    network = client.networks.create(f"{namespace}-victim", labels=labels)
    image = stopped.commit(repository=f"{namespace}-victim", tag="1",
                           changes=[f'LABEL {NAMESPACE_LABEL}="{namespace}"'])
    return {"container": running.name, "stopped": stopped.name, "volume": volume.name,
            "network": network.name, "image": f"{namespace}-victim:1", "image_id": image.id}


def _remove_victims(client, victims: dict[str, str]) -> None:
    for name in (victims["container"], victims["stopped"]):
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
    for remove in (lambda: client.volumes.get(victims["volume"]).remove(force=True),
                   lambda: client.networks.get(victims["network"]).remove(),
                   lambda: client.images.remove(victims["image_id"], force=True)):
        try:
            remove()
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The batch, graded once for every test here, with the daemon's state before and after."""
    client = docker.from_env()
    root = b.course_folder(tmp_path_factory.mktemp("adversarial") / "course",
                           b.sandbox_source(), assignment=b.SANDBOX)
    generate_release(root, root / "release", assignments=[b.SANDBOX])
    solved = b.solved(root, b.SANDBOX)
    partial = b.with_cell_source(solved, "volume-solution",
                                 "def make_volume(client, name, labels):\n    return None")
    before = daemon_objects(client)
    images_before = {i.id for i in client.images.list()}
    victims = _victims(client, _namespace(root, "bystander"))
    honest_names = [(f"{_namespace(root, s)}-sleeper") for s in HONEST]
    targets = ([("container", victims["container"]), ("container", victims["stopped"]),
                ("volume", victims["volume"]), ("network", victims["network"]),
                ("image", victims["image"])]
               + [("container", name) for name in honest_names])
    real_socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    real_socket = (real_socket.removeprefix("unix://") if real_socket.startswith("unix://")
                   else "/var/run/docker.sock")
    for student in HONEST:
        b.submit(root, student, partial if student == "honest-partial" else solved, b.SANDBOX)
    for student, source in ATTACKS.items():
        attack = ((GUARD + source).replace("@TARGETS@", repr(targets))
                  .replace("@SQUAT@", repr(list(SQUAT)))
                  .replace("@REAL_SOCKET@", repr(real_socket))
                  .replace("@VICTIM@", repr(victims["container"]))
                  .replace("@VICTIM_IMAGE_ID@", repr(victims["image_id"])))
        b.submit(root, student, b.with_added_cell(solved, attack.strip(), ATTACK), b.SANDBOX)
    started = time.monotonic()
    watch = _Watch(client, "smuggled")
    try:
        with watch:
            batch = grade_assignment(root, b.SANDBOX, OPTIONS)
        seconds = time.monotonic() - started
        survivors = _survivors(client, victims)
        course_images = {name: _exists(client.images.get, name) for name in COURSE_IMAGES}
        after = daemon_objects(client)
    finally:
        _remove_victims(client, victims)
        left = daemon_objects(client)
    yield {"root": root, "batch": batch, "results": {r.student: r for r in batch.results},
           "seconds": seconds, "victims": victims, "survivors": survivors,
           "course_images": course_images, "before": before, "after": after, "left": left,
           "images_before": images_before, "smuggled": watch.seen}
    client.close()


class _Watch:
    """Every container whose name holds ``marker``, inspected on the daemon while the batch
    runs: what an attack managed to create is judged even after the clean-ups removed it."""

    def __init__(self, client, marker: str) -> None:
        self.client, self.marker = client, marker
        self.seen: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for found in self.client.api.containers(all=True, filters={"name": self.marker}):
                try:
                    self.seen[found["Id"]] = self.client.api.inspect_container(found["Id"])
                except docker.errors.NotFound:
                    continue

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(10)


def _exists(get, ident: str) -> bool:
    try:
        get(ident)
        return True
    except docker.errors.NotFound:
        return False


def _survivors(client, victims: dict[str, str]) -> dict[str, object]:
    def state(name: str) -> str:
        try:
            return client.containers.get(name).status
        except docker.errors.NotFound:
            return "gone"
    return {"container": state(victims["container"]), "stopped": state(victims["stopped"]),
            "volume": _exists(client.volumes.get, victims["volume"]),
            "network": _exists(client.networks.get, victims["network"]),
            "image": _exists(client.images.get, victims["image"])}


def _attack_output(graded, student: str) -> str:
    return b.cell_text(b.read_autograded(graded["root"], student, b.SANDBOX), ATTACK)


def _result(graded, student: str):
    found = RESULT.findall(_attack_output(graded, student))
    assert found, f"{student}'s attack printed no RESULT:\n{_attack_output(graded, student)}"
    return json.loads(found[-1])


def test_every_kernel_talks_to_its_gatekeeper_not_to_the_daemon(graded):
    """Grading hands each kernel its gatekeeper's socket as DOCKER_HOST."""
    unguarded = [s for s in ATTACKS if "UNGUARDED" in _attack_output(graded, s)]
    assert not unguarded, f"kernels given the daemon itself: {unguarded}"


def test_the_batch_finishes_with_every_submission_accounted_for(graded):
    """Nothing an adversary does stops the batch or turns into an infrastructure error."""
    results = graded["results"]
    assert set(results) == set(HONEST) | set(ATTACKS)
    assert all(r.status != Status.INFRASTRUCTURE for r in results.values()), \
        {s: r.detail for s, r in results.items() if r.status == Status.INFRASTRUCTURE}
    assert results["kills-kernel"].status == Status.KERNEL_DIED
    assert results["never-ends"].status == Status.TIMED_OUT
    # The endless read is interrupted at the cell limit, unless the log reached its size cap
    # first: Docker then truncates the single log file and ends the follow.
    assert results["log-flood"].status in (Status.TIMED_OUT, Status.GRADED)


def test_honest_grades_are_unchanged_by_the_adversaries(graded):
    """An honest submission earns what it earns alone: full marks, or the partial score."""
    results = graded["results"]
    got = {s: (results[s].status, results[s].score) for s in HONEST}
    assert got == {s: (Status.GRADED, score) for s, score in HONEST.items()}


def test_adversaries_keep_the_points_of_their_honest_cells(graded):
    """The attack cell runs after the exercises: a refusal costs the attacker nothing else, and
    every submission still scores its honest work (so the attacks really ran in that kernel)."""
    results = graded["results"]
    assert {s: results[s].score for s in ATTACKS} == {s: FULL for s in ATTACKS}


@pytest.mark.parametrize("student, rule", [
    ("privileged", "no-privileged"),
    ("pid-host", "no-host-namespaces"),
])
def test_host_powers_are_refused_with_the_rule_named(graded, student, rule):
    output = _attack_output(graded, student)
    assert f"gatekeeper refused ({rule})" in output, output


@pytest.mark.parametrize("student, attempts", [("bind-root", 2), ("bind-socket", 3)])
def test_bind_mounts_of_the_host_are_refused(graded, student, attempts):
    """`/` (by either syntax) and the Docker socket (at any path) never reach a container."""
    output = _attack_output(graded, student)
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == attempts, output
    assert all("gatekeeper refused (bind-mounts-in-scratch)" in line for line in lines), output


def test_another_submissions_objects_cannot_be_touched_by_name(graded):
    """Stop, remove, delete: each is refused for the bystander's objects, and for honest
    peers' containers whichever way the race went (refused, or already gone)."""
    output = _attack_output(graded, "kill-others")
    assert "REMOVED" not in output, output
    victims = graded["victims"]
    for kind, key in (("container", "container"), ("container", "stopped"),
                      ("volume", "volume"), ("network", "network"), ("image", "image")):
        line = next(line for line in output.splitlines()
                    if line.startswith(f"{kind} {victims[key]} "))
        assert "gatekeeper refused (ownership)" in line, output


def test_deleting_and_pruning_everything_reaches_only_the_submissions_own_objects(graded):
    """`list(all=True)` sees only the submission's own containers, prunes are label-scoped."""
    removed = _result(graded, "delete-all")
    namespace = _namespace(graded["root"], "delete-all")
    assert removed and all(name.startswith(namespace) for name in removed), removed
    assert _result(graded, "prune-all") == "pruned"


def test_nothing_outside_the_submissions_is_touched(graded):
    """The bystander's container (still running), stopped container, volume, network and image
    survive every attack, and so do the course images."""
    assert graded["survivors"] == {"container": "running", "stopped": "created", "volume": True,
                                   "network": True, "image": True}
    assert graded["course_images"] == {name: True for name in COURSE_IMAGES}


def test_a_fork_bomb_in_a_container_stops_at_the_pids_limit(graded):
    result = _result(graded, "fork-bomb")
    assert result["limit"] == Limits().pids and 0 < result["pids"] <= result["limit"], result


@pytest.mark.parametrize("student", ["unmasked-proc", "seccomp-allow-all"])
def test_unconfined_security_settings_are_refused(graded, student):
    """Emptying Docker's masked and read-only /proc paths, or a seccomp profile that allows
    everything, unconfines a container as surely as `seccomp=unconfined` does."""
    output = _attack_output(graded, student)
    assert "gatekeeper refused (no-unconfined)" in output, output


@pytest.mark.skipif(not confinement.available(), reason="the build steps' pids limit is a cgroup "
                    "the gatekeeper makes, which needs root")
def test_a_build_step_cannot_fork_past_the_pids_limit(graded):
    """The classic builder has no pids limit per step: the gatekeeper's cgroup parent is one."""
    assert 0 < _result(graded, "build-forks") <= Limits().pids


@pytest.mark.skipif(not confinement.available(), reason="kernels are confined only when "
                    "grading as root; otherwise the grader's user can open the daemon's socket")
def test_the_kernel_cannot_reach_the_daemon_around_the_gatekeeper(graded):
    """A confined kernel cannot open the daemon's socket, so the gatekeeper is the only way."""
    assert _result(graded, "bypass") is False


@pytest.mark.skipif(not confinement.available(), reason="without confinement the kernel has no "
                    "process limit, and a fork bomb there would take the machine down")
def test_a_fork_bomb_in_the_kernel_stops_at_the_confined_users_process_limit(graded):
    result = _result(graded, "kernel-forks")
    assert "skipped" not in result, result
    assert result["refused"] and result["children"] < result["limit"], result


def test_a_memory_bomb_is_killed_at_the_memory_limit(graded):
    result = _result(graded, "memory-bomb")
    assert result["limit"] > 0 and result["oom"] and result["exit"] == 137, result


def test_two_hundred_containers_stop_at_the_cap(graded):
    output = _attack_output(graded, "many-containers")
    created = _result(graded, "many-containers")
    assert 0 < created < 200 and "gatekeeper refused (container-cap)" in output, output


def test_a_log_flood_is_bounded_on_disk_and_by_the_cell_limit(graded):
    """The flooding container gets a rotated json-file log; the endless read is interrupted."""
    config = _result(graded, "log-flood")
    assert config["Type"] == "json-file" and config["Config"]["max-size"], config
    ended_by_the_cap = graded["results"]["log-flood"].status == Status.GRADED
    assert ended_by_the_cap or "CellTimeoutError" in _attack_output(graded, "log-flood")


def test_a_port_squatter_leaves_honest_publishing_alone(graded):
    """The squatter got its ports; honest exercises ask the daemon for a free host port, so
    they still scored (see the honest grades), and the squatter's ports are free again."""
    assert _result(graded, "port-squatter") == len(SQUAT)
    for port in (SQUAT[0], SQUAT[-1]):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_no_object_is_left_on_the_daemon(graded):
    """Each submission's gatekeeper cleaned up, whatever state it ended in: nothing appeared
    that the batch could not account for, and the daemon holds what it held before."""
    assert graded["batch"].strays == []
    leaked = {kind: graded["left"][kind] - graded["before"][kind] for kind in graded["left"]}
    assert not any(leaked.values()), leaked
    assert graded["before"]["images"] <= graded["left"]["images"]


def test_the_batch_takes_a_modest_time(graded):
    """Limits, not luck, end the hanging and flooding submissions: the batch stays short."""
    assert graded["seconds"] < 240, graded["seconds"]


def test_a_request_smuggled_on_a_kept_alive_connection_is_checked_like_any_other(graded):
    """Lower-case keys, a bare-LF head before it: whatever the daemon then held was stamped
    and obeyed every rule (a refused create leaves nothing to find)."""
    answers = _result(graded, "smuggle")
    assert "gatekeeper refused" in answers, answers
    namespace = _namespace(graded["root"], "smuggle")
    broken = {ident[:12]: container_violations(found, "/nonexistent", namespace)
              for ident, found in graded["smuggled"].items()}
    assert not any(broken.values()), broken


@pytest.mark.skipif(not confinement.available(), reason="the kernel runs as its own user with "
                    "no_new_privs only when grading as root")
def test_a_setuid_file_a_container_leaves_in_scratch_gives_the_kernel_nothing(graded):
    result = _result(graded, "setuid-scratch")
    assert result["euid"] and result["euid"] != ["0"], result


def test_a_bind_source_swapped_for_a_symlink_after_the_check_still_mounts_what_was_checked(
        graded):
    logs = _result(graded, "symlink-swap")
    assert "passwd" not in logs and "root:" not in logs, logs


def test_builder_output_printed_by_a_step_gives_no_ownership(graded):
    tried = _result(graded, "forged-build-log")
    assert len(tried) == 2 and all("gatekeeper refused (ownership)" in t for t in tried), tried


@pytest.mark.skipif(not confinement.available(), reason="the checkout is covered only in a "
                    "confined kernel (grading as root)")
def test_the_confined_kernel_finds_no_solutions_in_the_checkout(graded):
    found = _result(graded, "read-course")
    assert all(value in ([], "PermissionError", "FileNotFoundError", "NotADirectoryError")
               for value in found.values()), found
