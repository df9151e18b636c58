"""Acceptance tests of the gatekeeper: each attack, in every form the daemon reads, through a real
gatekeeper, judged by what the real daemon then holds.

The daemon (Go's net/http, encoding/json, gorilla/mux, moby's handlers) reads more forms of a
request than a strict parser would: JSON keys in any case (even ``ſ`` for s and the Kelvin sign
for k), later duplicates winning, duplicate objects merged, anything after the first JSON value
ignored, form bodies read before the query string, bare-LF heads, folded headers, chunked bodies
beside a Content-Length, several requests on one connection. Every test sends hand-made bytes to
the gatekeeper's Unix socket, then looks on the daemon (never through the gatekeeper) at what
carries the test's token, and names the attack, the form and what the daemon holds when it got
through. ``test_control_*`` send the same bytes straight to the daemon (create only, never
start, removed at once) to show that each form is one the daemon really reads.
"""

from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from sandbox_judge import (
    GIB,
    KEEP_LABELS,
    RECORD_STEP,
    Conversation,
    FileServer,
    chunked,
    containers_with,
    create_body,
    escaped,
    exchange,
    fold,
    image_file,
    images_with,
    judge_token,
    lower_keys,
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
from graders.settings import BUSYBOX_IMAGE, GATEKEEPER_LABEL, REGISTRY_IMAGE

pytestmark = pytest.mark.docker

NAMESPACE = "difftest0001"
VICTIM = "difftestvict"
#: The daemon under test, where the controls go: DOCKER_HOST's socket, as docker.from_env reads.
DAEMON_SOCKET = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix(
    "unix://")
#: Moving a course image's name, even for a moment, disturbs everyone else on a shared daemon:
#: the tag test does it only when asked (the same rule is tested on someone else's name).
TOUCH_COURSE_NAMES = os.environ.get("DIFFTEST_TOUCH_COURSE_NAMES") == "1"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(client):
    return client.api


@pytest.fixture(scope="module")
def course_ids(api):
    return {name: api.inspect_image(name)["Id"] for name in (BUSYBOX_IMAGE, REGISTRY_IMAGE)}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = (tmp_path_factory.mktemp("difftest") / "scratch").resolve()
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def gate(scratch, api, course_ids):
    gatekeeper = Gatekeeper(NAMESPACE, scratch, limits=Limits(max_containers=5))
    gatekeeper.start()
    yield gatekeeper
    gatekeeper.close()


@pytest.fixture(scope="module")
def module_token(api):
    token = new_token("dm")
    yield token
    remove_everything_with(api, token)


@pytest.fixture(scope="module")
def learner(gate):
    """docker-py through the gatekeeper, for the plain steps around an attack."""
    client = docker.APIClient(base_url=gate.docker_host, version="1.41", timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def runner(learner, module_token):
    """A running container of the submission's, started through the gatekeeper: the target of
    exec and attach."""
    ident = learner.create_container(BUSYBOX_IMAGE, ["sh", "-c", "sleep 900", module_token],
                                     stdin_open=True, name=f"{module_token}-runner",
                                     labels=KEEP_LABELS)["Id"]
    learner.start(ident)
    return ident


@pytest.fixture(scope="module")
def victim_container(api, module_token):
    """Someone else's running container, made directly on the daemon."""
    ident = api.create_container(BUSYBOX_IMAGE, ["sh", "-c", "sleep 900", module_token],
                                 name=f"{module_token}-victim",
                                 labels={GATEKEEPER_LABEL: VICTIM, **KEEP_LABELS})["Id"]
    api.start(ident)
    return api.inspect_container(ident)


@pytest.fixture
def token(api):
    """The test's mark on everything it makes; afterwards all of it is removed from the daemon."""
    token = new_token("d")
    before = {image["Id"] for image in api.images(all=True)}
    yield token
    remove_everything_with(api, token)
    remove_new_images(api, token, before)
    for folder in glob.glob(f"/sys/fs/cgroup/*/*{token}*"):
        try:
            os.rmdir(folder)  # a cgroup parent a build was given stays behind on the host
        except OSError:
            pass
    left = [c["Name"] for c in containers_with(api, token)] + [
        t for i in images_with(api, token) for t in i["RepoTags"]]
    assert not left, f"left on the daemon: {left}"


@pytest.fixture(scope="module")
def web():
    """A web server on 127.0.0.1 the daemon can fetch a remote build context from."""
    server = FileServer()
    yield server
    server.close()


@dataclass(frozen=True)
class Foreign:
    name: str
    id: str
    secret: str
    path: str
    layer: str


def make_foreign(api, token: str, name: str) -> Foreign:
    """Someone else's image: a commit of busybox plus a secret file, labelled with another
    namespace, made directly on the daemon."""
    source = api.create_container(BUSYBOX_IMAGE, ["true", token], name=f"{token}-fsrc-"
                                  f"{new_token('')[:6]}",
                                  labels={GATEKEEPER_LABEL: VICTIM, **KEEP_LABELS})["Id"]
    secret = f"secret of {VICTIM} {token}"
    api.put_archive(source, "/", tar_context({f"secret-{token}": secret}))
    repository, tag = name.rsplit(":", 1)
    keep = " ".join(f'{k}="{v}"' for k, v in KEEP_LABELS.items())
    image = api.commit(source, repository=repository, tag=tag,
                       changes=[f'LABEL {GATEKEEPER_LABEL}="{VICTIM}" {keep}'])["Id"]
    api.remove_container(source)
    return Foreign(name, image, secret, f"/secret-{token}",
                   api.inspect_image(image)["RootFS"]["Layers"][-1])


@pytest.fixture
def foreign(api, token):
    return make_foreign(api, token, f"{token}-foreign:1")


@pytest.fixture(scope="module")
def victim_registry(api, module_token):
    """Someone else's registry on a 127.0.0.1 port, holding someone else's image."""
    ident = api.create_container(
        REGISTRY_IMAGE, name=f"{module_token}-registry",
        labels={GATEKEEPER_LABEL: VICTIM, **KEEP_LABELS},
        host_config=api.create_host_config(port_bindings={5000: ("127.0.0.1", None)}))["Id"]
    api.start(ident)
    port = api.port(ident, 5000)[0]["HostPort"]
    secret = make_foreign(api, module_token, f"{module_token}-regsecret:1")
    remote = f"127.0.0.1:{port}/{module_token}-secret"
    api.tag(secret.id, remote, "1")
    for _ in range(50):
        pushed = list(api.push(remote, tag="1", stream=True, decode=True))
        if not any("error" in line for line in pushed):
            break
        time.sleep(0.2)
    api.remove_image(f"{remote}:1")
    yield {"port": port, "image": f"{remote}:1", "foreign": secret}


# -- what goes in a create body ----------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    name: str
    key: str
    danger: object
    safe: object
    #: What the daemon's inspect shows when the danger arrives (for the controls).
    shows: str
    top: bool = False  # a top-level key of the create body, not one of HostConfig


INTENTS = [
    Intent("privileged", "Privileged", True, False, "Privileged=true"),
    Intent("bind-root", "Binds", ["/:/host"], [], "bind '/:/host'"),
    Intent("bind-docker-sock", "Binds", ["/var/run/docker.sock:/var/run/docker.sock"], [],
           "bind '/var/run/docker.sock"),
    Intent("mount-root", "Mounts", [{"Type": "bind", "Source": "/", "Target": "/host"}], [],
           "mount of type bind from '/'"),
    Intent("pid-host", "PidMode", "host", "", "PidMode=host"),
    Intent("cap-sys-admin", "CapAdd", ["SYS_ADMIN"], [], "CapAdd="),
    Intent("no-pids-limit", "PidsLimit", -1, 100, "PidsLimit="),
    Intent("no-memory-limit", "Memory", 0, 128 * 2**20, "Memory=0"),
    Intent("log-without-size", "LogConfig", {"Type": "json-file", "Config": {}},
           {"Type": "json-file", "Config": {"max-size": "10m"}}, "LogConfig="),
    Intent("unmasked-proc", "MaskedPaths", [], None, "MaskedPaths=[]"),
    # Joining another submission's cgroup puts the container under (and against) its limits.
    Intent("cgroup-of-another", "CgroupParent", f"/course-gatekeeper-{VICTIM}", "",
           "CgroupParent="),
    Intent("unstamped", "Labels", None, {"course.test": "1", **KEEP_LABELS}, "no stamp",
           top=True),
]
INTENT = {intent.name: intent for intent in INTENTS}


def _base(token: str, labels: bool = True) -> list[tuple[str, object]]:
    return [("Image", BUSYBOX_IMAGE), ("Cmd", ["sleep", "1", token]),
            *([("Labels", KEEP_LABELS)] if labels else [])]


def _wrap(intent: Intent, token: str, members: list, wrapper: str = "HostConfig") -> str:
    if intent.top:
        return obj(*_base(token, labels=False), *members)
    return obj(*_base(token), (wrapper, obj(*members)))


def plain_json(intent: Intent, token: str) -> str:
    return _wrap(intent, token, [(intent.key, intent.danger)])


def _all_keys_lower(intent: Intent, token: str) -> str:
    body = dict(_base(token, labels=not intent.top))
    if intent.top:
        body[intent.key] = intent.danger
    else:
        body["HostConfig"] = {intent.key: intent.danger}
    return json.dumps(lower_keys(body), separators=(",", ":"))


#: Body forms: (intent, token) -> the JSON text of a create body, or None where it does not apply.
BODY_FORMS = {
    "plain": plain_json,
    "key-lower": lambda i, t: _wrap(i, t, [(i.key.lower(), i.danger)]),
    "key-upper": lambda i, t: _wrap(i, t, [(i.key.upper(), i.danger)]),
    "key-unicode-fold": lambda i, t: (_wrap(i, t, [(fold(i.key), i.danger)])
                                      if fold(i.key) != i.key else None),
    "key-escaped": lambda i, t: _wrap(i, t, [(escaped(i.key), i.danger)]),
    "dup-lower-after-safe": lambda i, t: _wrap(i, t, [(i.key, i.safe), (i.key.lower(), i.danger)]),
    "dup-unicode-after-safe": lambda i, t: (_wrap(i, t, [(i.key, i.safe), (fold(i.key), i.danger)])
                                            if fold(i.key) != i.key else None),
    "dup-exact-after-safe": lambda i, t: _wrap(i, t, [(i.key, i.safe), (i.key, i.danger)]),
    "dup-null-after": lambda i, t: _wrap(i, t, [(i.key.lower(), i.danger), (i.key, None)]),
    "hostconfig-lower": lambda i, t: (None if i.top else
                                      _wrap(i, t, [(i.key, i.danger)], wrapper="hostconfig")),
    "hostconfig-unicode": lambda i, t: (None if i.top else _wrap(
        i, t, [(i.key, i.danger)], wrapper=fold("HostConfig"))),
    "all-keys-lower": _all_keys_lower,
    # Go decodes a second object for the same pointer into the first one: they merge.
    "dup-hostconfig-objects": lambda i, t: None if i.top else obj(
        *_base(t), ("HostConfig", obj((i.key, i.danger))),
        ("HostConfig", obj(("Memory", 128 * 2**20)))),
    # The deprecated top-level HostConfig fields: the daemon uses them when HostConfig is null.
    "toplevel-legacy": lambda i, t: None if i.top else obj(*_base(t), (i.key, i.danger)),
    "toplevel-inner-null": lambda i, t: None if i.top else obj(
        *_base(t), (i.key, i.danger), ("HostConfig", obj()), ("hostconfig", None)),
    # json.Decoder reads one value; what follows is never looked at.
    "trailing-data": lambda i, t: plain_json(i, t) + " " + obj(*_base(t), ("HostConfig", obj())),
}


def create_request(token: str, body: str, **options) -> bytes:
    return request("POST", f"/containers/create?name={token}", body, **options)


# -- transport forms: the same create, framed so a gatekeeper might not see it -------------------


@dataclass
class Where:
    """The socket an attack is sent to (the gatekeeper's, or the daemon's for a control)."""

    path: str
    api: object  # a low-level client on that socket, to make an exec to start
    runner: str


def _ping(**options) -> bytes:
    return request("GET", "/_ping", **options)


def _carrier(token: str, **options) -> bytes:
    """A harmless create of the submission's own, to carry the attack after it."""
    return create_request(f"{token}-carrier", json.dumps(create_body(token)), **options)


def _two_steps(first: bytes):
    def send(where: Where, danger: bytes, token: str) -> list:
        with Conversation(where.path, 5) as talk:
            talk.send(first)
            answers = talk.read(1, 3)
            talk.send(danger)
            return answers + talk.read(1, 3)
    return send


def _one_send(prefix: bytes = b"", suffix: bytes = b"", answers: int = 2, transform=None):
    def send(where: Where, danger: bytes, token: str) -> list:
        data = prefix + (transform(danger) if transform else danger) + suffix
        return exchange(where.path, data, answers, timeout=3)
    return send


def _exec_detached(where: Where, danger: bytes, token: str) -> list:
    """A detached exec start asks for an upgrade but gets a plain answer: the connection stays
    HTTP."""
    exec_id = where.api.exec_create(where.runner, ["true"])["Id"]
    with Conversation(where.path, 5) as talk:
        talk.send(request("POST", f"/exec/{exec_id}/start", {"Detach": True, "Tty": False},
                          headers=[("Connection", "Upgrade"), ("Upgrade", "tcp")]))
        answers = talk.read(1, 3)
        talk.send(danger)
        return answers + talk.read(1, 3)


def _after_hijack(kind: str):
    def send(where: Where, danger: bytes, token: str) -> list:
        upgrade = [("Connection", "Upgrade"), ("Upgrade", "tcp")]
        if kind == "exec":
            exec_id = where.api.exec_create(where.runner, ["cat"], stdin=True)["Id"]
            first = request("POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": False},
                            headers=upgrade)
        else:
            first = request("POST", f"/containers/{where.runner}/attach?stream=1&stdin=1&stdout=1",
                            b"", content_type=None, headers=upgrade)
        with Conversation(where.path, 5) as talk:
            talk.send(first)
            answers = talk.read(1, 3)
            talk.send(danger)
            talk.drain(0.5)
            return answers
    return send


def _bare_lf(intent: Intent, token: str) -> bytes:
    """The create with bare-LF line ends and no spaces, then an empty CRLF line pair."""
    return create_request(token, plain_json(intent, token), eol=b"\n", sep=":") + b"\r\n\r\n"


def _chunk_framed(token: str, te: str, trailer: str = "", extension: str = ""):
    def send(where: Where, danger: bytes, _token: str) -> list:
        body = json.dumps(create_body(token)).encode()
        framed = chunked(body, [7], extension=extension, trailer=trailer)
        headers = [("Transfer-Encoding", te)]
        length: bool | int = False
        if te.lower() == "chunked" and not trailer:  # a Content-Length that covers everything
            length = len(framed) + len(danger)
        head = request("POST", f"/containers/create?name={token}-carrier", b"", length=length,
                       headers=headers)
        return exchange(where.path, head + framed + danger, 2, timeout=3)
    return send


#: Transport forms: (where, danger request, token) -> the answers; the danger request is the
#: intent's plain create. ``bare-lf`` builds its own bytes (see ``_bare_lf``).
TRANSPORT_FORMS = {
    "keepalive-after-ping": lambda w, d, t: _two_steps(_ping())(w, d, t),
    "keepalive-after-refused": lambda w, d, t: _two_steps(request("GET", "/plugins"))(w, d, t),
    "pipelined-after-ping": _one_send(_ping()),
    "pipelined-after-create": lambda w, d, t: _one_send(_carrier(t))(w, d, t),
    "http10-keepalive": _one_send(_ping(version="HTTP/1.0",
                                        headers=[("Connection", "keep-alive")])),
    "upgrade-on-create": lambda w, d, t: _two_steps(_carrier(t, headers=[
        ("Connection", "Upgrade"), ("Upgrade", "tcp")]))(w, d, t),
    "upgrade-on-ping": _two_steps(_ping(headers=[("Connection", "Upgrade"), ("Upgrade", "tcp")])),
    "exec-detach-upgrade": _exec_detached,
    "after-exec-hijack": _after_hijack("exec"),
    "after-attach": _after_hijack("attach"),
    "bare-lf": None,  # whole request
    # Go ends the ping's head at the bare "\n\n"; the create that follows is a request of its own.
    "bare-lf-in-header": lambda w, d, t: _one_send(
        _ping(headers=[("X-Note", "y")]).removesuffix(b"\r\n\r\n") + b"\r\nX-Pad: a\n\n",
        b"\r\n\r\n", transform=lambda danger: danger.replace(b"\r\n", b"\n"))(w, d, t),
    "bare-lf-ping-first": _one_send(_ping(eol=b"\n")),
    # Go folds the indented line into X-Note: no Connection header, no Content-Length.
    "obs-fold-upgrade": _two_steps(_ping(headers=[("X-Note", "a\r\n Connection: Upgrade"),
                                                  ("Upgrade", "tcp")])),
    "obs-fold-hides-length": lambda w, d, t: _one_send(_ping(
        headers=[("X-Note", f"a\r\n Content-Length: {len(d)}")]))(w, d, t),
    "te-and-cl": lambda w, d, t: _chunk_framed(t, "chunked")(w, d, t),
    "te-case-and-cl": lambda w, d, t: _chunk_framed(t, "Chunked")(w, d, t),
    "chunk-ext-trailer": lambda w, d, t: _chunk_framed(t, "chunked", trailer="X-Trailer: 1",
                                                       extension=";ext=1")(w, d, t),
    "absolute-uri": _one_send(answers=1, transform=lambda danger: danger.replace(
        b"POST /v1", b"POST http://docker/v1", 1)),
    # Go reads chunk-size lines that end in a bare LF.
    "chunk-lines-bare-lf": _one_send(answers=1, transform=lambda danger: _rechunk_lf(danger)),
}


def _rechunk_lf(danger: bytes) -> bytes:
    head, body = danger.split(b"\r\n\r\n", 1)
    head = b"\r\n".join(line for line in head.split(b"\r\n")
                         if not line.lower().startswith(b"content-length"))
    return (head + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}\n".encode()
            + body + b"\r\n0\r\n\r\n")
#: After a real upgrade the connection is a raw stream: the daemon reads no request on it.
NOT_HTTP_AFTER = {"after-exec-hijack", "after-attach"}


def send_form(where: Where, form: str, intent: Intent, token: str) -> list:
    if form in BODY_FORMS:
        body = BODY_FORMS[form](intent, token)
        answers = exchange(where.path, create_request(token, body), 1, timeout=5)
    elif form == "bare-lf":
        answers = exchange(where.path, _bare_lf(intent, token), 1, timeout=3)
    else:
        danger = create_request(token, plain_json(intent, token))
        answers = TRANSPORT_FORMS[form](where, danger, token)
        time.sleep(0.1)  # a request smuggled behind another may still be on its way
    if not answers:  # the daemon may act on a request only once the connection has closed
        time.sleep(0.5)
    return answers


def _cases():
    for form in [*BODY_FORMS, *TRANSPORT_FORMS]:
        for intent in INTENTS:
            if form in BODY_FORMS and BODY_FORMS[form](intent, "probe") is None:
                continue
            yield pytest.param(intent, form, id=f"{intent.name}-{form}")


def _report(what: str, token: str, violations: list[str], answers: list) -> str:
    lines = "\n  - ".join(violations)
    told = "; ".join(str(a) for a in answers) or "nothing"
    return (f"{what} got through: the daemon holds, for token {token}:\n  - {lines}\n"
            f"(the gatekeeper answered: {told})")


@pytest.mark.parametrize("intent, form", list(_cases()))
def test_create_attack(intent, form, gate, learner, runner, api, scratch, token):
    answers = send_form(Where(str(gate.socket_path), learner, runner), form, intent, token)
    violations = judge_token(api, token, scratch, NAMESPACE)
    assert not violations, _report(f"{intent.name} sent as {form}", token, violations, answers)


# -- controls: the daemon itself reads each form -------------------------------------------------


CONTROLS = [
    *[("privileged", form) for form in BODY_FORMS if BODY_FORMS[form](INTENT["privileged"], "x")],
    ("bind-root", "key-unicode-fold"),
    ("unmasked-proc", "key-unicode-fold"),  # the Kelvin sign
    ("mount-root", "all-keys-lower"),
    ("unstamped", "dup-lower-after-safe"),
    *[("privileged", form) for form in TRANSPORT_FORMS],
]


#: Forms only some engines read: Engine 25 and later refuse data after the JSON value, and the
#: Go of Engine 26 refuses a bare LF ending a chunk-size line. Where the daemon refuses one, it
#: is no way past that daemon; the gatekeeper's tests of it still run.
ENGINE_DEPENDENT = {"trailing-data": "data after the JSON value",
                    "chunk-lines-bare-lf": "a bare LF in chunk-size lines"}


@pytest.mark.parametrize("name, form", CONTROLS, ids=[f"{n}-{f}" for n, f in CONTROLS])
def test_control_daemon_reads_form(name, form, api, runner, scratch, token):
    """The same bytes straight to the daemon: a container is created, and it has the danger."""
    intent = INTENT[name]
    answers = send_form(Where(DAEMON_SOCKET, api, runner), form, intent, token)
    created = [c for c in containers_with(api, token) if not c["Name"].endswith("-carrier")]
    violations = judge_token(api, token, scratch, "no-namespace")
    remove_everything_with(api, token)  # never started; gone at once
    if form in NOT_HTTP_AFTER:
        assert not created, f"after {form} the daemon read a request from the raw stream"
        return
    if not created and form in ENGINE_DEPENDENT:
        pytest.skip(f"Engine {api.version()['Version']} refuses {ENGINE_DEPENDENT[form]}")
    assert created, f"the daemon did not read {name} sent as {form}: {answers}"
    if intent.top:  # labels null after labels: the daemon keeps none of the request's labels
        labels = created[0]["Config"]["Labels"] or {}
        assert "course.test" not in labels, f"the daemon kept the labels: {labels}"
        return
    assert any(intent.shows in v for v in violations), \
        f"the daemon read {form} but did not apply {name}: {violations}"


# -- check-then-use: a bind folder swapped for a symlink after the create ----------------------


def _swap(folder: Path, to: Path) -> None:
    """Put ``folder`` aside (it stays in scratch) and put a symlink to ``to`` in its place."""
    folder.rename(folder.with_name(folder.name + ".orig"))
    folder.symlink_to(to)


@pytest.fixture
def unlink_after(scratch, token):
    """No symlink out of scratch (possibly to /) outlives the test."""
    yield
    for link in scratch.glob(f"*{token}*"):
        if link.is_symlink():
            link.unlink()


def _sees(api, container: str, paths: dict[str, str]) -> list[str]:
    """Which of ``paths`` (what -> path inside the container) exist, asked on the daemon."""
    script = "; ".join(f"[ -e '{path}' ] && echo '{what}'" for what, path in paths.items())
    exec_id = api.exec_create(container, ["sh", "-c", script + "; true"])["Id"]
    return api.exec_start(exec_id).decode().split()


def _outside(scratch: Path, token: str) -> tuple[Path, Path]:
    outside = scratch.parent / f"outside-{token}"
    outside.mkdir()
    (outside / f"marker-{token}").write_text("outside the scratch folder")
    inside = scratch / f"data-{token}"
    inside.mkdir()
    (inside / f"inside-{token}").write_text("inside")
    return inside, outside


@pytest.mark.parametrize("target", ["outside-folder", "root"])
def test_check_then_use_start_after_swap(target, gate, learner, api, scratch, token,
                                         unlink_after):
    inside, outside = _outside(scratch, token)
    created = learner.create_container(
        BUSYBOX_IMAGE, ["sh", "-c", "sleep 60", token], name=token,
        host_config=learner.create_host_config(binds=[f"{inside}:/mnt"]))["Id"]
    _swap(inside, outside if target == "outside-folder" else Path("/"))
    try:
        learner.start(created)
    except docker.errors.APIError:
        pass  # refusing the start is one way to hold the rule
    _judge_mounted(api, token, scratch, outside, f"start after swapping the bind for a symlink "
                                                 f"to {target}")


def _judge_mounted(api, token: str, scratch: Path, outside: Path, what: str) -> None:
    violations = judge_token(api, token, scratch, NAMESPACE, check_bind_sources=False)
    for found in containers_with(api, token):
        if not found["State"]["Running"]:
            continue
        seen = _sees(api, found["Id"], {
            "OUTSIDE-MARKER": f"/mnt/marker-{token}",
            "HOST-ROOT-MARKER": f"/mnt{outside}/marker-{token}",
            "HOST-DOCKER-SOCKET": "/mnt/var/run/docker.sock"})
        if seen:
            violations.append(f"container {found['Name']} sees {seen} at /mnt: the bind mount "
                              f"is not the scratch folder")
    assert not violations, _report(what, token, violations, [])


def test_check_then_use_restart_after_swap(gate, learner, api, scratch, token, unlink_after):
    inside, outside = _outside(scratch, token)
    created = learner.create_container(
        BUSYBOX_IMAGE, ["sh", "-c", "sleep 60", token], name=token,
        host_config=learner.create_host_config(binds=[f"{inside}:/mnt"]))["Id"]
    learner.start(created)
    _swap(inside, outside)
    try:
        learner.restart(created, timeout=0)
    except docker.errors.APIError:
        pass
    _judge_mounted(api, token, scratch, outside, "restart after swapping the bind for a symlink")


def test_check_then_use_restart_policy_after_swap(gate, learner, api, scratch, token,
                                                  unlink_after):
    """The daemon restarts an exited container by itself, resolving the bind source again."""
    inside, outside = _outside(scratch, token)
    created = learner.create_container(
        BUSYBOX_IMAGE, ["sh", "-c", "ls /mnt; sleep 1", token], name=token,
        host_config=learner.create_host_config(binds=[f"{inside}:/mnt"],
                                               restart_policy={"Name": "always"}))["Id"]
    try:
        learner.start(created)
    except docker.errors.APIError:
        pass
    _swap(inside, outside)
    deadline = time.monotonic() + 8
    logs = b""
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            state = api.inspect_container(created)
        except docker.errors.NotFound:
            break
        logs = api.logs(created)
        if state["RestartCount"] >= 1 and logs.count(b"\n") >= 2:
            break
    violations = judge_token(api, token, scratch, NAMESPACE, check_bind_sources=False)
    if f"marker-{token}".encode() in logs:
        violations.append(f"after a restart by the daemon's restart policy the container listed "
                          f"the outside folder at /mnt: {logs.decode()!r}")
    assert not violations, _report("restart policy always, then a swap", token, violations, [])


# -- update: limits lifted after the create ------------------------------------------------------


UPDATE_INTENTS = {
    "pids-zero": ("PidsLimit", 0, 200, []),
    "pids-unlimited": ("PidsLimit", -1, 200, []),
    "memory-above-ceiling": ("Memory", 2 * GIB, 64 * 2**20, [("MemorySwap", -1)]),
    "memory-minus-one": ("Memory", -1, 64 * 2**20, [("MemorySwap", -1)]),
    "cpu-quota-unlimited": ("CpuQuota", -1, 50_000, []),
}
UPDATE_FORMS = {
    "plain": lambda k, d, s: [(k, d)],
    "key-lower": lambda k, d, s: [(k.lower(), d)],
    "key-unicode-fold": lambda k, d, s: [(fold(k), d)] if fold(k) != k else None,
    "key-escaped": lambda k, d, s: [(escaped(k), d)],
    "dup-lower-after-safe": lambda k, d, s: [(k, s), (k.lower(), d)],
    "dup-exact-after-safe": lambda k, d, s: [(k, s), (k, d)],
    "trailing-data": lambda k, d, s: "trailing",
}
UPDATE_CASES = [pytest.param(i, f, id=f"{i}-{f}") for i in UPDATE_INTENTS for f in UPDATE_FORMS
                if UPDATE_FORMS[f](UPDATE_INTENTS[i][0], 0, 0) is not None]


@pytest.mark.parametrize("intent, form", UPDATE_CASES)
def test_update_attack(intent, form, gate, api, scratch, token):
    key, danger, safe, extra = UPDATE_INTENTS[intent]
    made = exchange(gate.socket_path, create_request(token, json.dumps(create_body(token))))
    assert made and made[0].status == 201, f"the plain create was refused: {made}"
    ident = made[0].json()["Id"]
    members = UPDATE_FORMS[form](key, danger, safe)
    if members == "trailing":
        body = obj((key, danger), *extra) + " " + obj()
    else:
        body = obj(*members, *extra)
    answers = exchange(gate.socket_path, request("POST", f"/containers/{ident}/update", body))
    violations = judge_token(api, token, scratch, NAMESPACE)
    assert not violations, _report(f"update {intent} sent as {form}", token, violations, answers)


# -- volumes and networks -------------------------------------------------------------------------


VOLUME_INTENTS = {
    "volume-bind-device": ("DriverOpts", {"type": "none", "o": "bind", "device": "/"}, {}),
    "volume-unstamped": ("Labels", None, {"course.test": "1"}),
}
NETWORK_INTENTS = {"network-unstamped": ("Labels", None, {"course.test": "1"})}
OBJECT_FORMS = ["plain", "key-lower", "key-unicode-fold", "dup-lower-after-safe",
                "dup-exact-after-safe", "trailing-data"]


def _object_members(form: str, key: str, danger, safe) -> list | None:
    return {"plain": [(key, danger)], "key-lower": [(key.lower(), danger)],
            "key-unicode-fold": [(fold(key), danger)] if fold(key) != key else None,
            "dup-lower-after-safe": [(key, safe), (key.lower(), danger)],
            "dup-exact-after-safe": [(key, safe), (key, danger)],
            "trailing-data": [(key, danger)]}[form]


OBJECT_CASES = [pytest.param(kind, name, form, id=f"{name}-{form}")
                for kind, intents in (("volumes", VOLUME_INTENTS), ("networks", NETWORK_INTENTS))
                for name, (key, _, _) in intents.items() for form in OBJECT_FORMS
                if _object_members(form, key, 1, 0) is not None]


@pytest.mark.parametrize("kind, name, form", OBJECT_CASES)
def test_volume_and_network_attack(kind, name, form, gate, api, scratch, token):
    key, danger, safe = {**VOLUME_INTENTS, **NETWORK_INTENTS}[name]
    body = obj(("Name", f"{token}-{kind[:3]}"), *_object_members(form, key, danger, safe))
    if form == "trailing-data":
        body += " " + obj(("Name", f"{token}-{kind[:3]}"))
    answers = exchange(gate.socket_path, request("POST", f"/{kind}/create", body))
    violations = judge_token(api, token, scratch, NAMESPACE)
    assert not violations, _report(f"{name} sent as {form}", token, violations, answers)


# -- form bodies: parameters the daemon reads from the body before the query ---------------------


FORM = "application/x-www-form-urlencoded"
KEEP_STEP = "LABEL " + " ".join(f'{k}="{v}"' for k, v in KEEP_LABELS.items())


def _form_body(values: dict[str, str], pad: bool = False) -> str:
    """A form body; ``pad`` puts 8 KiB first, as /build needs: moby peeks up to 4 KiB of its body
    (wrapOutputBufferedUntilRequestRead) before it parses the form, and the form is the rest."""
    text = urllib.parse.urlencode(values)
    return ("pad=" + "x" * 8192 + "&" + text) if pad else text


def _course_intact(api, course_ids) -> list[str]:
    found = []
    for name, ident in course_ids.items():
        try:
            now = api.inspect_image(name)["Id"]
        except docker.errors.NotFound:
            now = None
        if now != ident:
            found.append(f"the course image name {name} now points at {now} (was {ident})")
    return found


def _foreign_intact(api, foreign: Foreign) -> list[str]:
    try:
        now = api.inspect_image(foreign.name)["Id"]
    except docker.errors.NotFound:
        now = None
    return [] if now == foreign.id else [
        f"someone else's image name {foreign.name} now points at {now} (was {foreign.id})"]


def _restore(api, name: str, ident: str) -> None:
    """Give ``name`` back to ``ident`` if an attack moved it (and the image is still there)."""
    repository, tag = name.rsplit(":", 1)
    try:
        if api.inspect_image(name)["Id"] == ident:
            return
    except docker.errors.NotFound:
        pass
    try:
        api.tag(ident, repository, tag, force=True)
    except docker.errors.APIError:
        pass  # the attack removed the image itself: the test says so


@pytest.mark.parametrize("victim_name", ["someone-elses-name", "course-name"])
def test_tag_form_body_names_another_image(victim_name, gate, api, course_ids, foreign, token):
    """POST /images/{name}/tag: the daemon takes repo and tag from a form body first."""
    if victim_name == "course-name" and not TOUCH_COURSE_NAMES:
        pytest.skip("set DIFFTEST_TOUCH_COURSE_NAMES=1 to try moving a course image's name")
    taken = foreign.name if victim_name == "someone-elses-name" else BUSYBOX_IMAGE
    repository, tag = taken.rsplit(":", 1)
    data = request("POST", f"/images/{REGISTRY_IMAGE}/tag?repo={token}-alias&tag=1",
                   _form_body({"repo": repository, "tag": tag}), content_type=FORM)
    try:
        answers = exchange(gate.socket_path, data)
        violations = _foreign_intact(api, foreign) + _course_intact(api, course_ids)
    finally:
        _restore(api, BUSYBOX_IMAGE, course_ids[BUSYBOX_IMAGE])
        _restore(api, foreign.name, foreign.id)
    assert not violations, _report(f"tag with a form body naming {taken}", token, violations,
                                   answers)


def test_tag_query_naming_someone_elses_image_is_refused(gate, api, foreign, token):
    """The same rule asked plainly, in the query: the baseline of the form-body test."""
    repository, tag = foreign.name.rsplit(":", 1)
    answers = exchange(gate.socket_path, request(
        "POST", f"/images/{REGISTRY_IMAGE}/tag?repo={repository}&tag={tag}", b"",
        content_type=None))
    violations = _foreign_intact(api, foreign)
    _restore(api, foreign.name, foreign.id)
    assert not violations, _report("tag onto someone else's name", token, violations, answers)


@pytest.mark.parametrize("form", ["query", "form-body"])
def test_pull_from_someone_elses_registry(form, gate, api, victim_registry, token):
    """POST /images/create: a form body's fromImage wins over the query's."""
    wanted = victim_registry["image"]
    repository, tag = wanted.rsplit(":", 1)
    if form == "query":
        data = request("POST", f"/images/create?fromImage={repository}&tag={tag}", b"",
                       content_type=None)
    else:
        data = request("POST", f"/images/create?fromImage=127.0.0.1:1/{token}-nothing&tag=1",
                       _form_body({"fromImage": repository, "tag": tag}), content_type=FORM)
    try:
        answers = exchange(gate.socket_path, data, timeout=30)
        pulled = [t for i in images_with(api, repository) for t in i["RepoTags"] if t == wanted]
    finally:
        for name in {wanted} & {t for i in api.images() for t in i.get("RepoTags") or []}:
            api.remove_image(name)
    violations = [f"the daemon pulled {wanted} from a registry another submission runs"
                  ] if pulled else []
    assert not violations, _report(f"pull sent as {form}", token, violations, answers)


def test_commit_form_body(gate, learner, api, victim_container, foreign, token):
    """POST /commit also parses a form body, but then requires a JSON Content-Type (see the
    control): a form body can change nothing."""
    own = learner.create_container(BUSYBOX_IMAGE, ["true", token], name=token)["Id"]
    repository, tag = foreign.name.rsplit(":", 1)
    body = _form_body({"container": victim_container["Id"], "repo": repository, "tag": tag})
    answers = exchange(gate.socket_path, request(
        "POST", f"/commit?container={own}&repo={token}-commit&tag=1", body, content_type=FORM))
    violations = _foreign_intact(api, foreign)
    _restore(api, foreign.name, foreign.id)
    assert not violations, _report("commit with a form body", token, violations, answers)


def test_control_tag_reads_form_body_first(api, token):
    api.tag(BUSYBOX_IMAGE, f"{token}-src", "1")
    answers = exchange(DAEMON_SOCKET, request(
        "POST", f"/images/{token}-src:1/tag?repo={token}-query&tag=1",
        _form_body({"repo": f"{token}-body", "tag": "1"}), content_type=FORM))
    tags = {t for i in images_with(api, token) for t in i["RepoTags"]}
    assert f"{token}-body:1" in tags and f"{token}-query:1" not in tags, (answers, tags)


def test_control_images_create_reads_form_body_first(api, token):
    answers = exchange(DAEMON_SOCKET, request(
        "POST", "/images/create?fromImage=127.0.0.1:2/query&tag=1",
        _form_body({"fromImage": "127.0.0.1:1/body", "tag": "1"}), content_type=FORM),
        timeout=30)
    assert answers and b"127.0.0.1:1" in answers[0].body, answers


def test_control_commit_refuses_form_bodies(api, token):
    own = api.create_container(BUSYBOX_IMAGE, ["true", token], name=token)["Id"]
    answers = exchange(DAEMON_SOCKET, request(
        "POST", f"/commit?container={own}&repo={token}-q", _form_body({"repo": f"{token}-b"}),
        content_type=FORM))
    assert answers[0].status == 400 and b"application/json" in answers[0].body, answers
    assert not images_with(api, token)


@pytest.mark.parametrize("form", ["urlencoded-padded", "urlencoded-split-send",
                                  "multipart-split-send"])
def test_control_build_reads_form_body(form, api, web, token):
    """/build reads its parameters from a form body (after the first <= 4 KiB it peeked at):
    query labels={"from":"query"}, body labels={"from":"body"}, remote only in the body."""
    url = web.serve(f"/{token}.df", f"FROM {BUSYBOX_IMAGE}\n{KEEP_STEP}\nCMD [\"{token}\"]\n")
    values = {"remote": url, "t": f"{token}-body:1", "labels": json.dumps({"from": "body"})}
    query = "/build?" + urllib.parse.urlencode({"t": f"{token}-query:1", "rm": "1",
                                                "labels": json.dumps({"from": "query"})})
    answers = _send_form_build(DAEMON_SOCKET, form, query, values)
    built = images_with(api, token)
    assert built, f"the daemon did not build from a {form} body: {answers}"
    labels = api.inspect_image(built[0]["Id"])["Config"]["Labels"]
    if form.startswith("urlencoded"):
        assert labels.get("from") == "body", labels
    else:  # multipart values come after the query's
        assert labels.get("from") == "query", labels


def _send_form_build(path, form: str, query: str, values: dict[str, str], timeout: float = 90):
    if form == "urlencoded-padded":
        return exchange(path, request("POST", query, _form_body(values, pad=True),
                                      content_type=FORM), timeout=timeout)
    if form == "urlencoded-split-send":
        body = "&&" + _form_body(values)  # the peek takes the first two bytes
        data = request("POST", query, body, content_type=FORM)
    else:
        boundary = "difftestB0UNDARY"
        body = "\r\n" + "".join(
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            for k, v in values.items()) + f"--{boundary}--\r\n"
        data = request("POST", query, body,
                       content_type=f"multipart/form-data; boundary={boundary}")
    head, rest = data.split(b"\r\n\r\n", 1)
    with Conversation(path, timeout) as talk:  # the peek takes only what has arrived
        talk.send(head + b"\r\n\r\n")
        time.sleep(0.3)
        talk.send(rest[:2])
        time.sleep(0.3)
        talk.send(rest[2:])
        return talk.read(1)


# -- builds: parameters and RUN steps ------------------------------------------------------------


def _build(path, query: dict, files: dict[str, str], timeout: float = 120):
    query = {"labels": json.dumps(KEEP_LABELS), **query}
    target = "/build?" + urllib.parse.urlencode(query)
    return exchange(path, request("POST", target, tar_context(files),
                                  content_type="application/x-tar"), timeout=timeout)


def _judge_records(api, token: str, what: str, answers, **options) -> None:
    violations = []
    for image in images_with(api, token):
        violations += record_violations(records(api, image["Id"], token), **options)
    assert not violations, _report(what, token, sorted(set(violations)), [
        a.status for a in answers])


BUILD_PARAMS = {
    # name: (query additions, aspects judged)
    "networkmode-host": ({"networkmode": "host"}, ["network"]),
    "networkmode-other-container": ({"networkmode": "container:{victim}"}, ["network"]),
    "cgroupparent": ({"cgroupparent": "/{token}cg"}, ["cgroup"]),
    "memory-zero": ({"memory": "0"}, ["memory"]),
    "memory-above-ceiling": ({"memory": str(16 * GIB)}, ["memory"]),
    "memory-unparsable": ({"memory": "8g"}, ["memory"]),  # the daemon reads it as 0: no limit
    "buildkit-version-2": ({"version": "2"}, ["memory"]),  # pids: the fork test
    "buildkit-networkmode-host": ({"version": "2", "networkmode": "host"}, ["network"]),
}


@pytest.mark.parametrize("name", list(BUILD_PARAMS))
def test_build_parameters(name, gate, api, victim_container, token):
    extra, aspects = BUILD_PARAMS[name]
    victim = victim_container["Id"]
    query = {"t": f"{token}-built:1", **{k: v.format(token=token, victim=victim)
                                         for k, v in extra.items()}}
    answers = _build(gate.socket_path, query, {
        "Dockerfile": f"FROM {BUSYBOX_IMAGE}\nRUN echo {token} && {RECORD_STEP}\n"})
    _judge_records(api, token, f"build with {name}", answers, aspects=aspects,
                   cgroup_parent=f"/{token}cg",
                   other_mac=victim_container["NetworkSettings"]["MacAddress"])


FORM_BUILDS = {
    "form-body-networkmode-host": ("urlencoded-padded", {"networkmode": "host"}, ["network"]),
    "form-body-cgroupparent": ("urlencoded-padded", {"cgroupparent": "/{token}cg"}, ["cgroup"]),
    "form-body-memory-zero": ("urlencoded-padded", {"memory": "0"}, ["memory"]),
    "form-body-split-send-networkmode-host": ("urlencoded-split-send", {"networkmode": "host"},
                                              ["network"]),
    "multipart-networkmode-host": ("multipart-split-send", {"networkmode": "host"}, ["network"]),
    "form-body-remote-only": ("urlencoded-padded", {}, []),
}


@pytest.mark.parametrize("name", list(FORM_BUILDS))
def test_build_form_body(name, gate, api, web, token):
    """Build parameters in a form body, and the remote context they need (the body is the form)."""
    form, extra, aspects = FORM_BUILDS[name]
    url = web.serve(f"/{token}.df",
                f"FROM {BUSYBOX_IMAGE}\n{KEEP_STEP}\nRUN echo {token} && {RECORD_STEP}\n")
    web.hits.clear()
    values = {"remote": url, "t": f"{token}-body:1",
              **{k: v.format(token=token) for k, v in extra.items()}}
    query = f"/build?t={token}-query:1"
    answers = _send_form_build(gate.socket_path, form, query, values)
    violations = []
    for image in images_with(api, token):
        violations += record_violations(records(api, image["Id"], token), aspects=aspects,
                                        cgroup_parent=f"/{token}cg")
    if f"/{token}.df" in web.hits:
        violations.append(f"the daemon fetched the remote build context {url} named in the body")
    assert not violations, _report(f"build {name}", token, sorted(set(violations)),
                                   [a.status for a in answers])


@pytest.mark.parametrize("version", ["1", "2"])
def test_build_run_step_fork_stays_under_the_pids_limit(version, gate, api, token):
    step = (f"RUN echo {token}; for i in $(seq 1100); do sleep 20 & done; "
            f"ls /proc | grep -c '^[0-9]' > /rec-procs; "
            f"cat /sys/fs/cgroup/pids/pids.max > /rec-pids; true")
    answers = _build(gate.socket_path, {"t": f"{token}-fork:1", "version": version},
                     {"Dockerfile": f"FROM {BUSYBOX_IMAGE}\n{step}\n"}, timeout=180)
    _judge_records(api, token, f"a fork of 1100 processes in a RUN step (builder {version})",
                   answers, aspects=["pids"])


# -- builds: someone else's image must not become the submission's ------------------------------


def _dockerfiles(foreign: Foreign, token: str) -> dict[str, tuple[dict[str, str], dict]]:
    name, short = foreign.name, foreign.id.removeprefix("sha256:")[:12]
    busybox = BUSYBOX_IMAGE
    return {  # form: (context files, extra query)
        "from-name": ({"Dockerfile": f"FROM {name}\nRUN echo {token}\n"}, {}),
        "from-id": ({"Dockerfile": f"FROM {foreign.id}\nRUN echo {token}\n"}, {}),
        "from-short-id": ({"Dockerfile": f"FROM {short}\nRUN echo {token}\n"}, {}),
        "from-lowercase": ({"Dockerfile": f"from {name}\nRUN echo {token}\n"}, {}),
        "from-continued-line": ({"Dockerfile": f"FROM \\\n  {name}\nRUN echo {token}\n"}, {}),
        "from-split-keyword": ({"Dockerfile": f"FR\\\nOM {name}\nRUN echo {token}\n"}, {}),
        "from-escape-directive": ({"Dockerfile": f"# escape=`\nFROM `\n{name}\nRUN echo {token}\n"},
                                  {}),
        "from-arg-default": ({"Dockerfile": f"ARG B={name}\nFROM $B\nRUN echo {token}\n"}, {}),
        "from-arg-braces": ({"Dockerfile": f"ARG B={name}\nFROM ${{B}}\nRUN echo {token}\n"}, {}),
        "from-buildargs": ({"Dockerfile": f"ARG B\nFROM $B\nRUN echo {token}\n"},
                           {"buildargs": json.dumps({"B": name})}),
        "from-platform-flag": ({"Dockerfile": f"FROM --platform=linux/amd64 {name}\n"
                                              f"RUN echo {token}\n"}, {}),
        "from-bom-crlf": ({"Dockerfile": f"\ufeffFROM {name}\r\nRUN echo {token}\r\n"}, {}),
        "from-second-stage": ({"Dockerfile": f"FROM {busybox} AS first\nRUN echo {token}\n"
                                             f"FROM {name}\nRUN echo {token}\n"}, {}),
        "from-stage-alias": ({"Dockerfile": f"FROM {name} AS base\nFROM base\nRUN echo {token}\n"},
                             {}),
        "copy-from": ({"Dockerfile": f"FROM {busybox}\nCOPY --from={name} {foreign.path} /stolen\n"
                                     f"RUN echo {token}\n"}, {}),
        "dockerfile-param": ({"Dockerfile": f"FROM {busybox}\nRUN echo {token}\n",
                              "sub/other.df": f"FROM {name}\nRUN echo {token}\n"},
                             {"dockerfile": "./sub/../sub/other.df"}),
        "lowercase-dockerfile-name": ({"dockerfile": f"FROM {name}\nRUN echo {token}\n"}, {}),
        "fake-builder-output": ({"Dockerfile": f"FROM {busybox}\nRUN echo {token} && "
                                               f"echo ' ---> {short}' && "
                                               f"echo 'Successfully built {short}' && "
                                               f"echo 'sha256:{short}'\n"}, {}),
        "buildkit-from-name": ({"Dockerfile": f"FROM {name}\nRUN echo {token}\n"},
                               {"version": "2"}),
        "buildkit-run-mount-from": ({"Dockerfile": f"FROM {busybox}\nRUN --mount=type=bind,"
                                                   f"from={name},target=/x cp /x{foreign.path} "
                                                   f"/stolen && echo {token}\n"},
                                    {"version": "2"}),
    }


FOREIGN_FORMS = list(_dockerfiles(Foreign("x:1", "sha256:" + "0" * 64, "", "/x", ""), "t"))


def _foreign_violations(gate, api, foreign: Foreign, token: str) -> list[str]:
    found = []
    listed = sorted(api.images(all=True), key=lambda i: i.get("RepoTags") in (None, [],
                                                                              ["<none>:<none>"]))
    for image in listed:  # tagged ones first: the report names the build's own image
        if image["Id"] == foreign.id:
            continue
        if any(token in tag for tag in image.get("RepoTags") or []) or image["Created"] > \
                time.time() - 300:
            try:
                layers = api.inspect_image(image["Id"])["RootFS"]["Layers"]
            except docker.errors.NotFound:
                continue
            if foreign.layer in layers:
                found.append(f"image {image.get('RepoTags') or image['Id'][:19]} was built on "
                             f"someone else's image (it has its layer)")
    for image in images_with(api, token):
        if image["Id"] == foreign.id:
            continue
        for path in (foreign.path, "/stolen"):
            data = image_file(api, image["Id"], path, token)
            if data and foreign.secret.encode() in data:
                found.append(f"image {image['RepoTags']} holds {path} copied from someone "
                             f"else's image")
    # Ownership must not have moved: through the gatekeeper the foreign image stays out of reach.
    inspected = exchange(gate.socket_path, request("GET", f"/images/{foreign.id}/json"))
    if inspected and inspected[0].status == 200:
        found.append("the gatekeeper now lets the submission inspect someone else's image")
    saved = exchange(gate.socket_path, request("GET", "/images/get?names=" + urllib.parse.quote(
        foreign.name)), timeout=30)
    if saved and saved[0].status == 200 and foreign.secret.encode() in saved[0].body:
        found.append("the gatekeeper now lets the submission save (export) someone else's image")
    exchange(gate.socket_path, request("DELETE", "/images/" + urllib.parse.quote(foreign.name)))
    found += _foreign_intact(api, foreign)
    return found


@pytest.mark.parametrize("form", FOREIGN_FORMS)
def test_build_from_someone_elses_image(form, gate, api, course_ids, foreign, token):
    files, extra = _dockerfiles(foreign, token)[form]
    answers = _build(gate.socket_path, {"t": f"{token}-built:1", **extra}, files)
    violations = _foreign_violations(gate, api, foreign, token) + _course_intact(api, course_ids)
    _restore(api, foreign.name, foreign.id)
    assert not violations, _report(f"build {form}", token, violations,
                                   [a.status for a in answers])


@pytest.mark.parametrize("base", ["alpine:3", "someone-elses-registry"])
def test_build_from_an_image_that_would_be_pulled(base, gate, api, victim_registry, token):
    name = victim_registry["image"] if base == "someone-elses-registry" else base
    answers = _build(gate.socket_path, {"t": f"{token}-built:1"},
                     {"Dockerfile": f"FROM {name}\nRUN echo {token}\n"}, timeout=60)
    present = {t for i in api.images() for t in i.get("RepoTags") or []}
    violations = [f"the build pulled {name}, which is neither a course image nor the "
                  f"submission's"] if name in present else []
    violations += [f"the build made {t}" for i in images_with(api, token) for t in i["RepoTags"]]
    if name in present and base != "alpine:3":
        api.remove_image(name)
    assert not violations, _report(f"build FROM {base}", token, violations,
                                   [a.status for a in answers])


# -- caps -------------------------------------------------------------------------------------


def test_container_cap_holds_under_concurrent_creates(tmp_path, api, token):
    namespace = "difftestcap1"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cap = 5
    gatekeeper = Gatekeeper(namespace, scratch, limits=Limits(max_containers=cap))
    gatekeeper.start()
    seen: list[int] = []
    try:
        def create(n: int):
            body = json.dumps(create_body(token))
            return exchange(gatekeeper.socket_path, create_request(f"{token}-{n}", body), 1, 30)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(create, n) for n in range(24)]
            while not all(f.done() for f in futures):
                seen.append(len(api.containers(all=True, filters={
                    "label": f"{GATEKEEPER_LABEL}={namespace}"})))
                time.sleep(0.05)
        seen.append(len(api.containers(all=True, filters={
            "label": f"{GATEKEEPER_LABEL}={namespace}"})))
    finally:
        gatekeeper.close()
    assert max(seen) <= cap, (f"24 concurrent creates left up to {max(seen)} stamped containers "
                              f"on the daemon at once (the cap is {cap})")


def test_course_images_are_unchanged(api, course_ids):
    """After everything above: the course images keep their ids and names."""
    assert not _course_intact(api, course_ids)


def test_ordinary_calls_are_served(gate, api, scratch, token):
    """A gatekeeper that refused everything would pass every test above: the plain calls work,
    and what they make holds the rules."""
    data = scratch / f"data-{token}"
    data.mkdir()
    body = create_body(token, {"Binds": [f"{data}:/data"], "Memory": 64 * 2**20})
    made = exchange(gate.socket_path, create_request(token, json.dumps(body)))
    assert made and made[0].status == 201, f"a plain create was refused: {made}"
    ident = made[0].json()["Id"]
    updated = exchange(gate.socket_path, request("POST", f"/containers/{ident}/update",
                                                 {"PidsLimit": 200, "Memory": 128 * 2**20}))
    assert updated and updated[0].status == 200, f"a plain update was refused: {updated}"
    host = api.inspect_container(ident)["HostConfig"]
    assert (host["PidsLimit"], host["Memory"]) == (200, 128 * 2**20), host
    volume = exchange(gate.socket_path, request("POST", "/volumes/create",
                                                {"Name": f"{token}-vol"}))
    assert volume and volume[0].status == 201, f"a plain volume create was refused: {volume}"
    built = _build(gate.socket_path, {"t": f"{token}-built:1"},
                   {"Dockerfile": f"FROM {BUSYBOX_IMAGE}\nRUN echo {token} > /made\n"})
    assert images_with(api, f"{token}-built"), f"a plain build made no image: {built}"
    violations = judge_token(api, token, scratch, NAMESPACE)
    assert not violations, _report("an ordinary create", token, violations, made)
