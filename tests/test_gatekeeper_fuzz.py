"""Property-based fuzzing of the gatekeeper: requests as docker-py sends them, then mutated.

Hypothesis draws container creates, updates and builds from the fields docker-py fills in
(``docker/types/containers.py``: ContainerConfig, HostConfig; ``api/container.py``:
update_container; ``api/build.py``: build's query), then mutates them the way the daemon's
parsers let an attacker: a key spelled in another case (or with ``ſ``/``K``, or a JSON escape), a
duplicate key after a safe one, a dangerous field injected in HostConfig, at the top level
(the deprecated wrapper fields) or in a second HostConfig object, labels or HostConfig nulled
afterwards, a second JSON value after the first, parameters moved into a form body, and the
whole request framed differently (bare LF, chunked, behind a ping on the same connection). Each
request goes through a real gatekeeper; then whatever carries the example's token on the daemon
is judged by ``sandbox_judge``. Examples are not shrunk: every example runs, the findings are
collected, and one assertion lists each kind of hole with a request that showed it.

``FUZZ_SEED`` replays a run (the seed of each run is in its failure message); ``FUZZ_EXAMPLES``
scales how many examples each test draws.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import random
import re
import time
import urllib.parse

import docker
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sandbox_judge import (
    GIB,
    KEEP_LABELS,
    RECORD_STEP,
    Conversation,
    FileServer,
    Raw,
    chunked,
    escaped,
    exchange,
    fold,
    image_file,
    images_with,
    judge_token,
    new_token,
    obj,
    record_violations,
    records,
    remove_everything_with,
    remove_new_images,
    request,
    tar_context,
)

from graders.gatekeeper import Gatekeeper, Limits
from graders.settings import BUSYBOX_IMAGE, GATEKEEPER_LABEL

pytestmark = pytest.mark.docker

NAMESPACE = "fuzztest0001"
VICTIM = "fuzztestvict"
SEED = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
SCALE = float(os.environ.get("FUZZ_EXAMPLES_SCALE") or os.environ.get("FUZZ_EXAMPLES") or 1)
MIB = 2**20


def fuzz_settings(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    phases=[Phase.generate], derandomize=False, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(client):
    return client.api


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = (tmp_path_factory.mktemp("fuzztest") / "scratch").resolve()
    (folder / "data").mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def gate(scratch):
    gatekeeper = Gatekeeper(NAMESPACE, scratch, limits=Limits(max_containers=5))
    gatekeeper.start()
    yield gatekeeper
    gatekeeper.close()


@pytest.fixture(scope="module")
def module_token(api):
    token = new_token("fm")
    yield token
    remove_everything_with(api, token)


@pytest.fixture(scope="module")
def foreign(api, module_token):
    """Someone else's image (a secret file on busybox, another namespace's label)."""
    source = api.create_container(BUSYBOX_IMAGE, ["true", module_token],
                                  name=f"{module_token}-fsrc",
                                  labels={GATEKEEPER_LABEL: VICTIM, **KEEP_LABELS})["Id"]
    secret = f"secret of {VICTIM} {module_token}"
    api.put_archive(source, "/", tar_context({"secret": secret}))
    keep = " ".join(f'{k}="{v}"' for k, v in KEEP_LABELS.items())
    image = api.commit(source, repository=f"{module_token}-foreign", tag="1",
                       changes=[f'LABEL {GATEKEEPER_LABEL}="{VICTIM}" {keep}'])["Id"]
    api.remove_container(source)
    yield {"name": f"{module_token}-foreign:1", "id": image, "secret": secret,
           "layer": api.inspect_image(image)["RootFS"]["Layers"][-1]}
    try:
        api.remove_image(image, force=True)
    except docker.errors.APIError:
        pass


@pytest.fixture(scope="module")
def victim(api, module_token):
    """Someone else's running container, whose network a build must not join."""
    ident = api.create_container(BUSYBOX_IMAGE, ["sh", "-c", "sleep 600", module_token],
                                 name=f"{module_token}-victim",
                                 labels={GATEKEEPER_LABEL: VICTIM, **KEEP_LABELS})["Id"]
    api.start(ident)
    return api.inspect_container(ident)


@pytest.fixture(scope="module")
def web():
    server = FileServer()
    yield server
    server.close()


class Findings:
    """What got through, collected over all examples; reported once, grouped by kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.found: dict[str, tuple[str, str, int]] = {}
        self.examples = 0

    def add(self, violations: list[str], how: str, preview: bytes) -> None:
        for violation in violations:
            entry = self.found.setdefault(_rule(violation), [violation, how, preview, 0])
            entry[3] += 1

    def check(self) -> None:
        lines = [f"{count} example(s): {violation}\n      how: {how}\n      request: {preview!r}"
                 for violation, how, preview, count in self.found.values()]
        assert not self.found, (
            f"{len(self.found)} kind(s) of {self.kind} got through the gatekeeper in "
            f"{self.examples} examples (FUZZ_SEED={SEED} replays this run):\n  - "
            + "\n  - ".join(lines))


# -- a body as ordered (key, value) pairs, so duplicates and spellings survive ------------------


def _rule(violation: str) -> str:
    """The rule a violation breaks, without the names and ids of one example."""
    text = re.sub(r"^container /\S+ \(\w+\): ", "", violation)
    text = re.sub(r"[0-9a-f]{12,}|\b[a-z]{1,2}[0-9a-f]{12}\b", "...", text)
    return re.split(r"[(=]", text, maxsplit=1)[0].strip()[:80]


class Pairs(list):
    """A JSON object as ordered (key, value) pairs; duplicate keys allowed."""


MAPS = {"Labels", "Config", "DriverOpts", "Options", "Sysctls", "Tmpfs", "ExposedPorts",
        "Volumes", "PortBindings", "StorageOpt"}


def pairs(value, is_map: bool = False):
    if isinstance(value, dict) and not is_map:
        return Pairs((key, pairs(item, key in MAPS)) for key, item in value.items())
    if isinstance(value, list):
        return [pairs(item) for item in value]
    return value


def render(value) -> Raw:
    if isinstance(value, Pairs):
        return obj(*[(key, render(item)) for key, item in value])
    if isinstance(value, list):
        return Raw("[" + ",".join(render(item) for item in value) + "]")
    return Raw(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def spell(key: str, how: str):
    return {"same": key, "lower": key.lower(), "upper": key.upper(),
            "swapcase": key.swapcase(), "fold": fold(key), "escaped": escaped(key)}[how]


def fill(value, token: str, scratch):
    """Put the example's token and scratch folder into the placeholders a strategy drew."""
    if isinstance(value, str):
        return value.replace("{token}", token).replace("{scratch}", str(scratch))
    if isinstance(value, Pairs):
        return Pairs((fill(k, token, scratch), fill(v, token, scratch)) for k, v in value)
    if isinstance(value, list):
        return [fill(item, token, scratch) for item in value]
    if isinstance(value, dict):
        return {fill(k, token, scratch): fill(v, token, scratch) for k, v in value.items()}
    return value


SPELLINGS = ["same", "lower", "upper", "swapcase", "fold", "escaped"]
#: Dangerous HostConfig fields (the deprecated top-level wrapper takes the same names).
DANGERS = [
    ("Privileged", True), ("CapAdd", ["SYS_ADMIN"]), ("CapAdd", ["ALL"]),
    ("Devices", [{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem",
                  "CgroupPermissions": "rwm"}]),
    ("DeviceCgroupRules", ["a *:* rwm"]),
    ("DeviceRequests", [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]),
    ("NetworkMode", "host"), ("PidMode", "host"), ("IpcMode", "host"), ("UTSMode", "host"),
    ("UsernsMode", "host"), ("CgroupnsMode", "host"),
    ("SecurityOpt", ["seccomp=unconfined"]), ("SecurityOpt", ["apparmor=unconfined"]),
    ("SecurityOpt", ["label=disable"]),
    ("SecurityOpt", ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']),
    ("MaskedPaths", []), ("ReadonlyPaths", []), ("CgroupParent", "/"),
    ("CgroupParent", "course-gatekeeper-other/../.."), ("CgroupParent", "/course-gatekeeper-"
                                                         + VICTIM),
    ("Runtime", "io.containerd.runc.v2"),
    ("Binds", ["/:/host"]), ("Binds", ["/var/run/docker.sock:/var/run/docker.sock"]),
    ("Binds", ["{scratch}/../..:/up"]), ("Binds", ["/etc:/etc2:ro"]),
    ("Mounts", [{"Type": "bind", "Source": "/", "Target": "/host"}]),
    ("Mounts", [{"Type": "volume", "Source": "{token}-mv", "Target": "/v", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind",
                                                      "device": "/"}}}}]),
    ("VolumeDriver", "evil"), ("Memory", 0), ("Memory", 8 * GIB), ("PidsLimit", -1),
    ("PidsLimit", 0), ("PidsLimit", 100_000), ("NanoCpus", 8 * 10**9), ("CpuQuota", -1),
    ("CpuQuota", 800_000), ("CpuPeriod", 1000), ("LogConfig", {"Type": "json-file", "Config": {}}),
    ("LogConfig", {"Type": "none"}), ("LogConfig", {"Type": "json-file",
                                                    "Config": {"max-size": "10m"}}),
]
TOP_DANGERS = [("Labels", None), ("Labels", {GATEKEEPER_LABEL: VICTIM}), ("HostConfig", None)]


# -- strategies: what docker-py sends ----------------------------------------------------------


def _optional(**fields):
    return st.fixed_dictionaries({}, optional=fields)


CONFIG = _optional(
    Hostname=st.sampled_from(["web", "db-1"]), Domainname=st.just("example.org"),
    User=st.sampled_from(["", "1000", "nobody", "0:0"]), Tty=st.booleans(),
    OpenStdin=st.booleans(), StdinOnce=st.booleans(), AttachStdout=st.booleans(),
    Env=st.lists(st.sampled_from(["A=1", "PATH=/bin:/usr/bin", "EMPTY="]), max_size=2),
    WorkingDir=st.sampled_from(["/", "/tmp", ""]), Entrypoint=st.sampled_from([None, []]),
    Labels=st.dictionaries(st.sampled_from(["app", "tier", "org.docker-course.x"]),
                           st.sampled_from(["1", "web", ""]), max_size=2),
    StopSignal=st.sampled_from(["SIGTERM", "SIGKILL"]), StopTimeout=st.integers(0, 10),
    ExposedPorts=st.sampled_from([{"80/tcp": {}}, {"53/udp": {}}]),
    Volumes=st.sampled_from([{"/data": {}}, {}]), NetworkDisabled=st.booleans(),
    Healthcheck=st.sampled_from([{"Test": ["NONE"]}, {"Test": ["CMD", "true"], "Interval": 10**9}]),
)
HOST = _optional(
    Binds=st.lists(st.sampled_from(["{scratch}/data:/data", "{scratch}/data:/ro:ro",
                                    "{token}-named:/named", "{scratch}:/scratch"]), max_size=2),
    Memory=st.sampled_from([0, 6 * MIB, 64 * MIB, 512 * MIB, GIB, 2 * GIB, -1]),
    MemorySwap=st.sampled_from([0, -1, 128 * MIB, 4 * GIB]),
    MemoryReservation=st.sampled_from([0, 32 * MIB]),
    NanoCpus=st.sampled_from([0, 5 * 10**8, 2 * 10**9, 3 * 10**9]),
    CpuQuota=st.sampled_from([0, 50_000, 300_000, -1]), CpuPeriod=st.sampled_from([0, 100_000]),
    CpuShares=st.sampled_from([0, 512]), CpusetCpus=st.sampled_from(["", "0"]),
    PidsLimit=st.sampled_from([None, -1, 0, 64, 1024, 4096]), Privileged=st.booleans(),
    CapAdd=st.lists(st.sampled_from(["NET_ADMIN", "SYS_ADMIN", "CHOWN", "SYS_PTRACE"]),
                    max_size=2),
    CapDrop=st.lists(st.sampled_from(["ALL", "NET_RAW"]), max_size=1),
    NetworkMode=st.sampled_from(["default", "bridge", "none", "host"]),
    PidMode=st.sampled_from(["", "host"]), IpcMode=st.sampled_from(["", "private", "shareable",
                                                                     "host"]),
    UTSMode=st.sampled_from(["", "host"]), CgroupnsMode=st.sampled_from(["", "private", "host"]),
    SecurityOpt=st.lists(st.sampled_from(["no-new-privileges", "seccomp=unconfined",
                                          "apparmor=unconfined", "label:disable"]), max_size=1),
    ReadonlyRootfs=st.booleans(), MaskedPaths=st.sampled_from([None, []]),
    CgroupParent=st.sampled_from(["", "/", "mine"]),
    RestartPolicy=st.sampled_from([{"Name": "no"}, {"Name": "on-failure", "MaximumRetryCount": 2}]),
    LogConfig=st.sampled_from([{"Type": "json-file", "Config": {"max-size": "1m"}},
                               {"Type": "json-file", "Config": {}}, {"Type": "none"},
                               {"Type": "local", "Config": {"max-size": "5m"}}]),
    Tmpfs=st.sampled_from([{"/run": "size=1m"}]), ShmSize=st.sampled_from([0, 64 * MIB]),
    OomKillDisable=st.booleans(), Init=st.booleans(), AutoRemove=st.booleans(),
    Sysctls=st.sampled_from([{"net.ipv4.ip_forward": "1"}]),
    Ulimits=st.sampled_from([[{"Name": "nofile", "Soft": 1024, "Hard": 2048}]]),
    Mounts=st.lists(st.sampled_from([
        {"Type": "bind", "Source": "{scratch}/data", "Target": "/m"},
        {"Type": "volume", "Source": "{token}-mvol", "Target": "/v"},
        {"Type": "tmpfs", "Target": "/t"},
        {"Type": "bind", "Source": "/", "Target": "/host"}]), max_size=1),
    Runtime=st.sampled_from(["", "runc", "io.containerd.runc.v2"]),
    Devices=st.sampled_from([[], [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x",
                                   "CgroupPermissions": "r"}]]),
    PortBindings=st.sampled_from([{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}]),
    PublishAllPorts=st.booleans(), Dns=st.sampled_from([["1.1.1.1"]]),
    ExtraHosts=st.sampled_from([["db:127.0.0.1"]]), GroupAdd=st.sampled_from([["10"]]),
    VolumeDriver=st.sampled_from(["", "local"]),
)
MUTATION = st.one_of(
    st.tuples(st.just("respell"), st.sampled_from(["top", "host"]), st.integers(0, 40),
              st.sampled_from(SPELLINGS[1:])),
    st.tuples(st.just("inject"), st.integers(0, len(DANGERS) - 1),
              st.sampled_from(["host", "top", "second-hostconfig", "after-same-key",
                               "hostconfig-spelled"]), st.sampled_from(SPELLINGS)),
    st.tuples(st.just("top"), st.integers(0, len(TOP_DANGERS) - 1), st.sampled_from(SPELLINGS),
              st.booleans()),
    st.tuples(st.just("trailing"), st.integers(0, len(DANGERS) - 1)),
)
TRANSPORTS = ["plain", "plain", "plain", "pipelined-after-ping", "upgrade-on-ping", "bare-lf",
              "chunked", "chunked-with-length", "obs-fold-upgrade", "bare-lf-in-header"]


def _hostconfig(body: Pairs) -> Pairs:
    for key, value in body:
        if key == "HostConfig" and isinstance(value, Pairs):
            return value
    host = Pairs()
    body.append(("HostConfig", host))
    return host


def mutate(body: Pairs, mutation: tuple) -> Pairs:
    """Apply one mutation (not "trailing", which ``_create_bytes`` handles) to ``body``."""
    kind = mutation[0]
    if kind == "respell":
        _, where, index, how = mutation
        target = body if where == "top" else _hostconfig(body)
        if target:
            at = index % len(target)
            key, value = target[at]
            if isinstance(key, str):
                target[at] = (spell(key, how), value)
    elif kind == "inject":
        _, index, where, how = mutation
        key, value = DANGERS[index]
        spelled = spell(key, how)
        if where == "host":
            _hostconfig(body).append((spelled, value))
        elif where == "top":
            body.append((spelled, value))
        elif where == "second-hostconfig":  # Go merges it into the first; Python keeps the last
            host_at = next((i for i, (k, _) in enumerate(body) if k == "HostConfig"), len(body))
            body.insert(host_at, ("HostConfig", Pairs([(spelled, value)])))
        elif where == "hostconfig-spelled":
            body.append((spell("HostConfig", how if how != "same" else "lower"),
                         Pairs([(key, value)])))
        else:  # a duplicate right after the same key (or at the end): Go's last one wins
            host = _hostconfig(body)
            at = next((i + 1 for i, (k, _) in enumerate(host) if k == key), len(host))
            host.insert(at, (spelled, value))
    elif kind == "top":
        _, index, how, after_real = mutation
        key, value = TOP_DANGERS[index]
        body.append((spell(key, how), value))
    return body


def frame(transport: str, data: bytes) -> tuple[bytes, int]:
    """The request's bytes as sent, and how many answers to wait for."""
    if transport == "pipelined-after-ping":
        return request("GET", "/_ping") + data, 2
    if transport == "upgrade-on-ping":
        return request("GET", "/_ping", headers=[("Connection", "Upgrade"),
                                                 ("Upgrade", "tcp")]) + data, 2
    if transport == "obs-fold-upgrade":
        return request("GET", "/_ping", headers=[("X-Note", "a\r\n Connection: Upgrade"),
                                                 ("Upgrade", "tcp")]) + data, 2
    head, body = data.split(b"\r\n\r\n", 1)
    if transport == "bare-lf":
        return data.replace(b"\r\n", b"\n").replace(b": ", b":") + b"\r\n\r\n", 1
    if transport == "bare-lf-in-header":
        return (request("GET", "/_ping").removesuffix(b"\r\n\r\n") + b"\r\nX-Pad: a\n\n"
                + data.replace(b"\r\n", b"\n") + b"\r\n\r\n"), 2
    if transport.startswith("chunked"):
        lines = [line for line in head.split(b"\r\n")
                 if not line.lower().startswith(b"content-length")]
        if transport == "chunked-with-length":
            lines.append(f"Content-Length: {max(1, len(body) // 2)}".encode())
        lines.append(b"Transfer-Encoding: chunked")
        return b"\r\n".join(lines) + b"\r\n\r\n" + chunked(body, [5, 9]), 1
    return data, 1


def send(path, data: bytes, answers: int) -> list:
    with Conversation(path, 5) as talk:
        talk.send(data)
        got = talk.read(answers, 4)
    time.sleep(0.1 if got else 0.5)  # the daemon may act only once the connection closed
    return got


def _preview(data: bytes) -> bytes:
    return data[:900]


# -- the properties ----------------------------------------------------------------------------


CREATE_CASE = st.fixed_dictionaries({
    "kind": st.sampled_from(["container"] * 8 + ["volume", "network"]),
    "config": CONFIG, "host": HOST,
    "mutations": st.lists(MUTATION, max_size=3), "transport": st.sampled_from(TRANSPORTS),
    "volume": st.sampled_from([{}, {"Driver": "local"}, {"DriverOpts": {"type": "tmpfs",
                                                                         "device": "tmpfs"}},
                               {"DriverOpts": {"type": "none", "o": "bind", "device": "/"}},
                               {"Labels": {"a": "b"}}]),
})


def _create_bytes(case: dict, token: str, scratch) -> tuple[bytes, str]:
    if case["kind"] == "container":
        body = pairs({"Image": BUSYBOX_IMAGE, **case["config"], "Cmd": ["sleep", "1", token],
                      "Labels": {**case["config"].get("Labels", {}), **KEEP_LABELS},
                      "HostConfig": case["host"]})
        path = f"/containers/create?name={token}"
    else:
        body = pairs({"Name": f"{token}-{case['kind'][:3]}", **(
            case["volume"] if case["kind"] == "volume" else {"Driver": "bridge"})})
        path = f"/{case['kind']}s/create"
    after = None
    for mutation in case["mutations"]:
        if mutation[0] == "trailing":  # the daemon reads only the first value: make it the bad one
            after = copy.deepcopy(body)
            body = mutate(body, ("inject", mutation[1], "host", "same"))
        else:
            body = mutate(body, mutation)
    text = render(fill(body, token, scratch))
    if after is not None:
        text += " " + render(fill(after, token, scratch))
    return request("POST", path, text), text


@pytest.mark.timeout(300)
def test_fuzz_creates(gate, api, scratch):
    findings = Findings("container/volume/network creates")

    @seed(SEED)
    @fuzz_settings(60)
    @given(case=CREATE_CASE)
    def run(case):
        token = new_token("f")
        try:
            data, text = _create_bytes(case, token, scratch)
            wire, answers = frame(case["transport"], data)
            send(gate.socket_path, wire, answers)
            findings.examples += 1
            violations = judge_token(api, token, scratch, NAMESPACE)
            if violations:
                how = f"{case['kind']}, {case['transport']}, mutations {case['mutations']}"
                findings.add(violations, how, _preview(wire))
        finally:
            remove_everything_with(api, token)

    run()
    findings.check()


UPDATE_DANGERS = [("PidsLimit", 0), ("PidsLimit", -1), ("PidsLimit", 100_000),
                  ("Memory", 2 * GIB), ("MemorySwap", -1), ("CpuQuota", -1),
                  ("CpuQuota", 1_000_000), ("CpuPeriod", 1000), ("NanoCpus", 8 * 10**9),
                  ("Memory", -1)]
UPDATE_CASE = st.fixed_dictionaries({
    "fields": _optional(
        BlkioWeight=st.sampled_from([10, 500]), CpuPeriod=st.sampled_from([100_000, 50_000]),
        CpuQuota=st.sampled_from([50_000, 100_000, -1]), CpuShares=st.sampled_from([512, 1024]),
        CpusetCpus=st.sampled_from(["0", ""]), CpusetMems=st.sampled_from(["0"]),
        Memory=st.sampled_from([64 * MIB, 512 * MIB, 2 * GIB]),
        MemoryReservation=st.sampled_from([32 * MIB]),
        MemorySwap=st.sampled_from([2 * GIB, -1]), PidsLimit=st.sampled_from([50, 500, 0, -1]),
        RestartPolicy=st.sampled_from([{"Name": "on-failure", "MaximumRetryCount": 3},
                                       {"Name": "always"}])),
    "mutations": st.lists(st.one_of(
        st.tuples(st.just("respell"), st.integers(0, 20), st.sampled_from(SPELLINGS[1:])),
        st.tuples(st.just("inject"), st.integers(0, len(UPDATE_DANGERS) - 1),
                  st.sampled_from(SPELLINGS), st.booleans()),
        st.tuples(st.just("trailing"), st.integers(0, len(UPDATE_DANGERS) - 1))), max_size=3),
    "transport": st.sampled_from(["plain", "plain", "pipelined-after-ping", "bare-lf", "chunked",
                                  "upgrade-on-ping"]),
})


@pytest.mark.timeout(300)
def test_fuzz_updates(gate, api, scratch):
    findings = Findings("updates")

    @seed(SEED + 1)
    @fuzz_settings(25)
    @given(case=UPDATE_CASE)
    def run(case):
        token = new_token("f")
        try:
            made = exchange(gate.socket_path, request(
                "POST", f"/containers/create?name={token}",
                {"Image": BUSYBOX_IMAGE, "Cmd": ["sleep", "1", token], "Labels": KEEP_LABELS}))
            if not made or made[0].status != 201:
                findings.add([f"a plain create was refused: {made}"], "setup", b"")
                return
            ident = made[0].json()["Id"]
            body, trailing = pairs(case["fields"]), ""
            for mutation in case["mutations"]:
                if mutation[0] == "respell" and body:
                    at = mutation[1] % len(body)
                    body[at] = (spell(body[at][0], mutation[2]), body[at][1])
                elif mutation[0] == "inject":
                    key, value = UPDATE_DANGERS[mutation[1]]
                    body.append((spell(key, mutation[2]), value))
                elif mutation[0] == "trailing":
                    trailing = " " + render(copy.deepcopy(body))
                    body = Pairs([*body, UPDATE_DANGERS[mutation[1]]])
            data = request("POST", f"/containers/{ident}/update", render(body) + trailing)
            wire, answers = frame(case["transport"], data)
            send(gate.socket_path, wire, answers)
            findings.examples += 1
            violations = judge_token(api, token, scratch, NAMESPACE)
            if violations:
                findings.add(violations, f"{case['transport']}, mutations {case['mutations']}",
                             _preview(wire))
        finally:
            remove_everything_with(api, token)

    run()
    findings.check()


DOCKERFILES = {
    "busybox": "FROM " + BUSYBOX_IMAGE + "\nRUN echo {token} && " + RECORD_STEP + "\n",
    "foreign": "FROM {foreign}\nRUN echo {token} && " + RECORD_STEP + "\n",
    "foreign-lowercase-arg": "ARG B={foreign}\nfrom $B\nRUN echo {token}\n",
    "copy-from-foreign": "FROM " + BUSYBOX_IMAGE + "\nCOPY --from={foreign} /secret /stolen\n"
                         "RUN echo {token}\n",
    "mount-from-foreign": "FROM " + BUSYBOX_IMAGE + "\nRUN --mount=type=bind,from={foreign},"
                          "target=/x cp /x/secret /stolen && echo {token}\n",
}
BUILD_CASE = st.fixed_dictionaries({
    "dockerfile": st.sampled_from(["busybox"] * 4 + list(DOCKERFILES)[1:]),
    "params": _optional(
        q=st.sampled_from(["1", "0"]), nocache=st.sampled_from(["1", "0"]),
        rm=st.sampled_from(["1", "0"]), forcerm=st.sampled_from(["1", "0"]),
        shmsize=st.sampled_from(["67108864"]), memory=st.sampled_from(
            ["268435456", "0", "-1", str(16 * GIB), "8g"]),
        memswap=st.sampled_from(["-1", "536870912"]), cpushares=st.sampled_from(["512"]),
        cpusetcpus=st.sampled_from(["0"]), cpuperiod=st.sampled_from(["100000"]),
        cpuquota=st.sampled_from(["50000", "-1", "400000"]),
        networkmode=st.sampled_from(["default", "bridge", "none", "host", "container:{victim}"]),
        cgroupparent=st.sampled_from(["/{token}cg", "course-gatekeeper-{token}"]),
        extrahosts=st.sampled_from(["db:127.0.0.1"]), version=st.sampled_from(["1", "2"]),
        buildargs=st.sampled_from([json.dumps({"B": "x"})]),
        labels=st.sampled_from([json.dumps({"app": "web"}),
                                json.dumps({GATEKEEPER_LABEL: VICTIM})])),
    # How the parameters travel: all in the query, or some in a form body (then the context
    # comes from a remote URL, as the body is the form), duplicated, or spelled otherwise.
    "carrier": st.sampled_from(["query", "query", "form-body", "duplicate-after",
                                "duplicate-before", "respelled"]),
    "moved": st.lists(st.sampled_from(["memory", "networkmode", "cgroupparent", "version",
                                       "cpuquota"]), max_size=3, unique=True),
})


@pytest.mark.timeout(300)
def test_fuzz_builds(gate, api, scratch, foreign, victim, web):
    findings = Findings("builds")

    @seed(SEED + 2)
    @fuzz_settings(15)
    @given(case=BUILD_CASE)
    def run(case):
        token = new_token("f")
        before = {image["Id"] for image in api.images(all=True)}
        values = {"foreign": foreign["name"], "token": token, "victim": victim["Id"]}
        dockerfile = DOCKERFILES[case["dockerfile"]].format(**values)
        params = {k: v.replace("{token}", token).replace("{victim}", victim["Id"])
                  for k, v in case["params"].items()}
        query = [("t", f"{token}-q:1"), ("labels", json.dumps(KEEP_LABELS))]
        body_values: list[tuple[str, str]] = []
        carrier = case["carrier"]
        for key, value in params.items():
            if key == "labels":
                query = [(k, v) for k, v in query if k != "labels"]
            if carrier == "form-body" and key in case["moved"]:
                body_values.append((key, value))
            elif carrier == "duplicate-after" and key in case["moved"]:
                query += [(key, "268435456" if key == "memory" else "default"), (key, value)]
            elif carrier == "duplicate-before" and key in case["moved"]:
                query += [(key, value), (key, "268435456" if key == "memory" else "default")]
            elif carrier == "respelled" and key in case["moved"]:
                query.append((key.upper(), value))
            else:
                query.append((key, value))
        target = "/build?" + urllib.parse.urlencode(query)
        try:
            if carrier == "form-body":
                form = [("remote", web.serve(f"/{token}.df", dockerfile)),
                        ("t", f"{token}-b:1"), *body_values]
                wire = request("POST", target, "pad=" + "x" * 8192 + "&"
                               + urllib.parse.urlencode(form),
                               content_type="application/x-www-form-urlencoded")
            else:
                wire = request("POST", target, tar_context({"Dockerfile": dockerfile}),
                               content_type="application/x-tar")
            exchange(gate.socket_path, wire, 1, timeout=90)
            findings.examples += 1
            violations = _build_violations(api, gate, token, foreign, victim, params)
            if violations:
                how = (f"Dockerfile {case['dockerfile']}, params {params}, {carrier} "
                       f"{case['moved']}")
                findings.add(violations, how, _preview(wire.split(b"\r\n\r\n")[0]))
        finally:
            remove_everything_with(api, token)
            remove_new_images(api, token, before)
            for folder in glob.glob(f"/sys/fs/cgroup/*/*{token}*"):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass

    run()
    findings.check()


def _build_violations(api, gate, token: str, foreign: dict, victim: dict, params: dict):
    found = []
    for image in images_with(api, token):
        inspect = api.inspect_image(image["Id"])
        if foreign["layer"] in inspect["RootFS"]["Layers"]:
            found.append(f"image {image['RepoTags']} was built on someone else's image")
        stamp = (inspect["Config"].get("Labels") or {}).get(GATEKEEPER_LABEL)
        if stamp not in (None, NAMESPACE):
            found.append(f"image {image['RepoTags']} carries another submission's stamp "
                         f"{GATEKEEPER_LABEL}={stamp}")
        stolen = image_file(api, image["Id"], "/stolen", token)
        if stolen and foreign["secret"].encode() in stolen:
            found.append(f"image {image['RepoTags']} holds a file of someone else's image")
        found += record_violations(
            records(api, image["Id"], token), aspects=["network", "cgroup", "memory"],
            cgroup_parent=params.get("cgroupparent", ""),
            other_mac=victim["NetworkSettings"]["MacAddress"])
    seen = exchange(gate.socket_path, request("GET", f"/images/{foreign['id']}/json"))
    if seen and seen[0].status == 200:
        found.append("after the build the gatekeeper lets the submission inspect someone "
                     "else's image")
    return found
