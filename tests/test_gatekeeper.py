"""The gatekeeper on a real daemon: docker-py works through it, and a submission is kept to its own.

Each test talks to the daemon only through a fresh gatekeeper, beside a "victim": objects made
directly on the daemon under another namespace, which nothing here may see or touch.
"""

from __future__ import annotations

import io
import json
import tarfile

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.types import Mount

from graders.gatekeeper import Gatekeeper, Limits
from graders.lab import requests_made, requests_on
from graders.settings import BUSYBOX_IMAGE, GATEKEEPER_LABEL, NAMESPACE_LABEL

pytestmark = pytest.mark.docker
OWN, OTHER = "gatekeeper01", "bystander001"


@pytest.fixture
def victim(client):
    """Someone else's container, volume and network, which must survive every test."""
    labels = {NAMESPACE_LABEL: OTHER, GATEKEEPER_LABEL: OTHER}
    objects = {
        "container": client.containers.run(BUSYBOX_IMAGE, ["sleep", "600"], detach=True,
                                           name=f"{OTHER}-web", labels=labels),
        "volume": client.volumes.create(f"{OTHER}-data", labels=labels),
        "network": client.networks.create(f"{OTHER}-net", labels=labels),
    }
    objects["container"].stop(timeout=0)
    yield objects
    for kind in ("container", "volume", "network"):
        objects[kind].reload()  # raises NotFound if a test let it be removed
    objects["container"].remove(force=True)
    objects["network"].remove()
    objects["volume"].remove()


@pytest.fixture
def gatekeeper(tmp_path, no_leftovers):
    gate = Gatekeeper(OWN, tmp_path, limits=Limits(max_containers=3))
    gate.start()
    yield gate
    gate.close()


@pytest.fixture
def learner(gatekeeper):
    """What a submission's kernel gets: docker.from_env() with DOCKER_HOST set to the gatekeeper."""
    client = docker.DockerClient(base_url=gatekeeper.docker_host, version="auto")
    yield client
    client.close()


def refused(rule: str):
    return pytest.raises(APIError, match=rf"gatekeeper refused \({rule}\)")


def test_everyday_calls_work_and_are_stamped(learner, client):
    output = learner.containers.run(BUSYBOX_IMAGE, ["echo", "hello"], remove=True)
    assert output == b"hello\n"
    web = learner.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True, name=f"{OWN}-web")
    assert web.exec_run(["echo", "from exec"]).output == b"from exec\n"
    volume = learner.volumes.create(f"{OWN}-data")
    network = learner.networks.create(f"{OWN}-net")
    for kind, ident in (("container", web.id), ("volume", volume.name), ("network", network.id)):
        found = getattr(client, f"{kind}s").get(ident)
        assert found.attrs.get("Config", found.attrs).get("Labels")[GATEKEEPER_LABEL] == OWN
    assert NAMESPACE_LABEL not in web.labels  # the exercise's own labels stay its choice
    # ...and the stamp is invisible through the gatekeeper, so label checks read as on Docker.
    assert GATEKEEPER_LABEL not in learner.containers.get(web.id).labels
    assert learner.volumes.get(volume.name).attrs["Labels"] in (None, {})
    assert GATEKEEPER_LABEL not in str(learner.containers.list()[0].attrs)
    assert learner.volumes.create(f"{OWN}-memory", driver_opts={"type": "tmpfs",
                                                                "device": "tmpfs"})


def test_streams_pass_through_attach_and_build(learner, client):
    """Hijacked attach sockets and streamed build contexts cross the gatekeeper byte for byte."""
    container = learner.containers.create(BUSYBOX_IMAGE, ["cat"], stdin_open=True,
                                          name=f"{OWN}-cat")
    socket = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    container.start()
    socket._sock.sendall(b"round trip\n")
    socket._sock.shutdown(1)  # end of stdin: cat exits
    assert container.wait(timeout=20)["StatusCode"] == 0
    assert container.logs() == b"round trip\n"
    dockerfile = f"FROM {BUSYBOX_IMAGE}\nRUN echo built > /built\n".encode()
    image, _ = learner.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{OWN}-app:1",
                                    rm=True, forcerm=True)
    built = learner.images.get(f"{OWN}-app:1")
    assert len(built.history()) == len(client.images.get(BUSYBOX_IMAGE).history()) + 1
    untagged, _ = learner.images.build(fileobj=io.BytesIO(dockerfile), quiet=True)
    for image in (built.attrs["Parent"], untagged.id):  # build steps and untagged builds too
        assert learner.images.get(image)


def test_lists_show_only_own_objects(learner, victim):
    learner.containers.run(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-mine")
    names = {c.name for c in learner.containers.list(all=True)}
    assert names == {f"{OWN}-mine"}
    assert victim["volume"].name not in {v.name for v in learner.volumes.list()}
    networks = {n.name for n in learner.networks.list()}
    assert f"{OTHER}-net" not in networks and "bridge" in networks
    assert BUSYBOX_IMAGE in {t for i in learner.images.list() for t in i.tags}


def test_someone_elses_objects_are_refused_by_name(learner, victim):
    with refused("ownership"):
        learner.containers.get(f"{OTHER}-web").remove(force=True)
    with refused("ownership"):
        learner.api.stop(f"{OTHER}-web")
    with refused("ownership"):
        learner.api.remove_volume(f"{OTHER}-data")
    with refused("ownership"):
        learner.api.remove_network(f"{OTHER}-net")
    with refused("ownership"):
        learner.containers.run(BUSYBOX_IMAGE, ["true"], volumes={f"{OTHER}-data": {"bind": "/d"}})


def test_a_volume_can_be_bound_by_its_mountpoint_only_if_it_is_own(learner, victim):
    """Binding a volume's folder on the host is mounting that volume: fine for one's own."""
    mine = learner.volumes.create(f"{OWN}-data")
    learner.containers.run(BUSYBOX_IMAGE, ["true"], remove=True,
                           volumes={mine.attrs["Mountpoint"]: {"bind": "/data"}})
    with refused("bind-mounts-in-scratch"):
        learner.containers.run(BUSYBOX_IMAGE, ["true"], remove=True,
                               volumes={victim["volume"].attrs["Mountpoint"]: {"bind": "/data"}})


def test_prunes_remove_only_own_objects(learner, victim, client):
    learner.containers.run(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-stopped")
    learner.containers.prune()
    first, _ = learner.images.build(fileobj=io.BytesIO(
        f"FROM {BUSYBOX_IMAGE}\nCMD [\"one\"]\n".encode()), tag=f"{OWN}-app:1")
    learner.images.build(fileobj=io.BytesIO(f"FROM {BUSYBOX_IMAGE}\nCMD [\"two\"]\n".encode()),
                         tag=f"{OWN}-app:1")  # takes the name: the first one dangles
    pruned = learner.images.prune()
    assert [entry["Deleted"] for entry in pruned["ImagesDeleted"]] == [first.id]
    assert learner.images.prune()["ImagesDeleted"] is None
    learner.images.prune(filters={"dangling": False})
    with pytest.raises(NotFound):
        client.images.get(f"{OWN}-app:1")
    learner.volumes.prune()
    learner.networks.prune()
    assert client.images.get(BUSYBOX_IMAGE)
    with pytest.raises(NotFound):
        client.containers.get(f"{OWN}-stopped")


@pytest.mark.parametrize("run_options, rule", [
    ({"privileged": True}, "no-privileged"),
    ({"cap_add": ["SYS_ADMIN"]}, "no-added-capabilities"),
    ({"devices": ["/dev/null:/dev/x"]}, "no-devices"),
    ({"network_mode": "host"}, "no-host-namespaces"),
    ({"pid_mode": "host"}, "no-host-namespaces"),
    ({"security_opt": ["seccomp=unconfined"]}, "no-unconfined"),
    ({"volumes": {"/": {"bind": "/host"}}}, "bind-mounts-in-scratch"),
    ({"volumes": {"/var/run/docker.sock": {"bind": "/var/run/docker.sock"}}},
     "bind-mounts-in-scratch"),
    ({"mounts": [Mount("/host", "/etc", type="bind")]}, "bind-mounts-in-scratch"),
    ({"mem_limit": "64g"}, "resource-ceiling"),
])
def test_host_powers_are_refused(learner, run_options, rule):
    with refused(rule):
        learner.containers.run(BUSYBOX_IMAGE, ["true"], remove=True, **run_options)


def test_volume_drivers_that_mount_host_paths_are_refused(learner):
    with refused("plain-volumes"):
        learner.volumes.create(f"{OWN}-host", driver_opts={"type": "none", "o": "bind",
                                                           "device": "/"})


def test_daemon_wide_endpoints_and_foreign_registries_are_refused(learner):
    with refused("endpoint-not-allowed"):
        learner.swarm.init()
    with refused("endpoint-not-allowed"):
        learner.plugins.list()
    with refused("own-registry-only"):
        learner.images.pull("alpine", tag="3")



def test_pushes_reach_no_one_elses_registry(learner, client):
    """Someone else's registry port is refused; a port nobody publishes gets the daemon's error."""
    theirs = client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True,
                                   name=f"{OTHER}-registry", labels={GATEKEEPER_LABEL: OTHER},
                                   ports={"5000/tcp": ("127.0.0.1", None)})
    try:
        port = client.api.port(theirs.id, 5000)[0]["HostPort"]
        learner.api.tag(BUSYBOX_IMAGE, f"127.0.0.1:{port}/{OWN}-app", "1")
        # A refused push fails inside its progress stream, as the daemon reports a failed push.
        pushed = list(learner.images.push(f"127.0.0.1:{port}/{OWN}-app", tag="1", stream=True,
                                          decode=True))
        assert "gatekeeper refused (own-registry-only)" in pushed[-1]["error"]
        learner.api.tag(BUSYBOX_IMAGE, f"127.0.0.1:1/{OWN}-app", "1")
        pushed = list(learner.images.push(f"127.0.0.1:1/{OWN}-app", tag="1", stream=True,
                                          decode=True))
        assert "error" in pushed[-1] and "gatekeeper" not in pushed[-1]["error"]
    finally:
        theirs.remove(force=True)


def test_links_are_reached_by_their_link_names(learner):
    """A link is named /<container>/<alias>: slashes inside the name still find the owner."""
    learner.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True, name=f"{OWN}-web")
    learner.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True, name=f"{OWN}-client",
                           links={f"{OWN}-web": "web"})
    assert learner.api.inspect_container(f"/{OWN}-client/web")["Name"] == f"/{OWN}-web"
    learner.api.remove_container(f"/{OWN}-client/web", link=True)


def test_base_images_stay_read_only(learner, client):
    base_id = client.images.get(BUSYBOX_IMAGE).id
    with refused("base-images-read-only"):
        learner.images.remove(BUSYBOX_IMAGE, force=True)
    with refused("base-images-read-only"):
        learner.api.tag(BUSYBOX_IMAGE, "busybox", "1.35.0", force=True)
    learner.api.tag(BUSYBOX_IMAGE, f"{OWN}-alias", "1")
    learner.images.remove(f"{OWN}-alias:1")  # an alias it made is its own to remove
    assert client.images.get(BUSYBOX_IMAGE).id == base_id


def test_a_loaded_archive_cannot_take_a_course_image_name(learner, client, tmp_path):
    """`docker load` names images from inside the archive; the gatekeeper puts names back."""
    base_id = client.images.get(BUSYBOX_IMAGE).id
    dockerfile = f"FROM {BUSYBOX_IMAGE}\nRUN echo impostor > /impostor\n".encode()
    impostor, _ = learner.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{OWN}-impostor:1")
    archive = b"".join(impostor.save())
    rewritten = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as source, \
            tarfile.open(fileobj=rewritten, mode="w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["RepoTags"] = [BUSYBOX_IMAGE]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    learner.images.load(rewritten.getvalue())
    assert client.images.get(BUSYBOX_IMAGE).id == base_id


def test_defaults_fill_unset_limits_and_the_container_cap_holds(learner, client):
    first = learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-c0")
    host = client.api.inspect_container(first.id)["HostConfig"]
    limits = Limits()
    assert (host["Memory"], host["PidsLimit"]) == (limits.memory, limits.pids)
    assert host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"] == limits.nano_cpus
    first.update(mem_limit="512m", cpu_quota=50_000)  # limits stay adjustable below the ceiling
    learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-c1")
    learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-c2")
    with refused("container-cap"):
        learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-c3")
    first.remove()  # the cap counts the containers there are, not the ones ever created
    learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-c3")
    with refused("container-cap"):
        learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-c4")


def test_a_cpu_period_alone_is_judged_with_the_quota_the_daemon_keeps(learner, client):
    """An update of the period alone keeps the creation quota: 1000 us would give 100 CPUs."""
    container = learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-period")
    with refused("resource-ceiling"):
        container.update(cpu_period=1000)
    container.update(cpu_period=200_000)  # the same quota over a longer period: fewer CPUs
    host = client.api.inspect_container(container.id)["HostConfig"]
    assert host["CpuPeriod"] == 200_000
    assert host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"] <= Limits().nano_cpus_ceiling


def test_someone_elses_exec_is_refused(learner, client):
    """An exec id the submission did not create is looked up, and refused if it is not its own."""
    other = client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True,
                                  name=f"{OTHER}-exec", labels={GATEKEEPER_LABEL: OTHER})
    try:
        exec_id = client.api.exec_create(other.id, ["true"])["Id"]
        with refused("ownership"):
            learner.api.exec_start(exec_id)
        with refused("ownership"):
            learner.api.exec_inspect(exec_id)
    finally:
        other.remove(force=True)


def test_a_containers_everyday_life_costs_the_daemon_no_extra_lookups(learner, gatekeeper):
    """What the submission creates is remembered: its calls are checked without asking the daemon.

    Every lookup is a daemon call on top of the submission's own, on a daemon that many
    submissions share; only the first use of a course image's name is looked up.
    """
    lookups = []
    gatekeeper.policy.api.hooks["response"].append(
        lambda response, *args, **kwargs: lookups.append(response.request.path_url))
    learner.containers.run(BUSYBOX_IMAGE, ["true"], remove=True)
    assert len(lookups) == 1, lookups  # the course image's name
    lookups.clear()
    web = learner.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True, name=f"{OWN}-web")
    assert web.exec_run(["echo", "hi"]).output == b"hi\n"
    learner.containers.get(f"{OWN}-web").reload()
    web.remove(force=True)
    assert lookups == []


def test_closing_removes_everything_the_submission_owns(tmp_path, client, no_leftovers):
    gate = Gatekeeper(OWN, tmp_path)
    gate.start()
    try:
        learner = docker.DockerClient(base_url=gate.docker_host, version="auto")
        learner.containers.run(BUSYBOX_IMAGE, ["sleep", "600"], detach=True, name=f"{OWN}-up",
                               volumes={f"{OWN}-implicit": {"bind": "/data"}})
        anonymous = learner.api.create_container(BUSYBOX_IMAGE, ["true"], volumes=["/scratch"])
        mount = learner.api.inspect_container(anonymous["Id"])["Mounts"][0]["Name"]
        assert learner.volumes.get(mount)  # its own, though unlabelled
        learner.networks.create(f"{OWN}-net")
        learner.api.tag(BUSYBOX_IMAGE, f"{OWN}-alias", "1")
        learner.images.build(fileobj=io.BytesIO(f"FROM {BUSYBOX_IMAGE}\nRUN true\n".encode()),
                             tag=f"{OWN}-built:1", rm=True)
        learner.close()
    finally:
        removed = gate.close()
    assert not removed.failures
    for lookup, name in ((client.volumes.get, f"{OWN}-implicit"), (client.volumes.get, mount),
                         (client.images.get, f"{OWN}-alias:1"),
                         (client.images.get, f"{OWN}-built:1")):
        with pytest.raises(NotFound):
            lookup(name)
    assert client.images.get(BUSYBOX_IMAGE)


def _orphaned_anonymous_volume(learner, client) -> str:
    """A volume made for a container that was then removed without its volumes."""
    container = learner.api.create_container(BUSYBOX_IMAGE, ["true"], volumes=["/data"])
    name = client.api.inspect_container(container["Id"])["Mounts"][0]["Name"]
    learner.api.remove_container(container["Id"])  # v=False: the volume stays
    return name


def test_an_anonymous_volume_stays_the_submissions_after_its_container_goes(
        tmp_path, client, no_leftovers):
    """Unlabelled, yet still the submission's: listed, and removed when the submission ends."""
    gate = Gatekeeper(OWN, tmp_path)
    gate.start()
    try:
        learner = docker.DockerClient(base_url=gate.docker_host, version="auto")
        name = _orphaned_anonymous_volume(learner, client)
        assert name in {v.name for v in learner.volumes.list()}
        learner.close()
    finally:
        removed = gate.close()
    assert name in removed.volumes and not removed.failures
    with pytest.raises(NotFound):
        client.volumes.get(name)


def test_a_volume_prune_takes_the_submissions_unused_volumes_only(learner, client, victim):
    """As the daemon in front of it prunes: anonymous ones, and named ones too before API 1.42
    or with all=true; someone else's unlabelled volume stays."""
    anonymous = _orphaned_anonymous_volume(learner, client)
    named = learner.volumes.create(f"{OWN}-unused")
    theirs = client.volumes.create()
    try:
        first = learner.api.prune_volumes()["VolumesDeleted"] or []
        assert anonymous in first
        named_too = learner.api.version()["ApiVersion"] < "1.42"
        assert (named.name in first) == named_too
        if not named_too:
            assert learner.api.prune_volumes({"all": True})["VolumesDeleted"] == [named.name]
        assert client.volumes.get(theirs.name) and client.volumes.get(f"{OTHER}-data")
    finally:
        theirs.remove()


def test_course_gatekeeper_serves_until_interrupted_then_cleans_up(tmp_path, client,
                                                                   no_leftovers):
    """The endpoint learners can try by hand: refusals are shown, Ctrl-C removes their objects."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    course = Path(sys.executable).parent / "course"
    process = subprocess.Popen([str(course), "gatekeeper", "--namespace", OWN, "--scratch",
                                str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while not line.startswith("export DOCKER_HOST="):
            line = process.stdout.readline()
            assert line, "course gatekeeper ended before printing its endpoint"
        learner = docker.DockerClient(base_url=line.split("=", 1)[1].strip(), version="auto")
        learner.containers.run(BUSYBOX_IMAGE, ["sleep", "600"], detach=True, name=f"{OWN}-by-hand")
        with refused("no-privileged"):
            learner.containers.run(BUSYBOX_IMAGE, ["true"], privileged=True)
        learner.close()
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    assert "refused gatekeeper refused (no-privileged)" in output.replace("\n", " ")
    assert "removed 1 objects" in output
    with pytest.raises(NotFound):
        client.containers.get(f"{OWN}-by-hand")


def test_two_submissions_that_build_alike_keep_their_own_images(tmp_path, client, no_leftovers):
    """The build cache gives both the same image id: closing one must not remove the other's."""
    dockerfile = f"FROM {BUSYBOX_IMAGE}\nRUN echo same > /same\n".encode()
    gates = [Gatekeeper(namespace, tmp_path) for namespace in (OWN, "gatekeeper02")]
    try:
        ids = []
        for gate in gates:
            gate.start()
            learner = docker.DockerClient(base_url=gate.docker_host, version="auto")
            image, _ = learner.images.build(fileobj=io.BytesIO(dockerfile),
                                            tag=f"{gate.namespace}-same:1", rm=True)
            ids.append(image.id)
            learner.close()
        assert ids[0] == ids[1]
        gates[0].close()
        assert client.images.get(ids[1]).tags == ["gatekeeper02-same:1"]
    finally:
        for gate in gates:
            gate.close()
    with pytest.raises(NotFound):
        client.images.get(ids[1])


def test_prunes_of_two_submissions_at_once_both_succeed(tmp_path, no_leftovers):
    """The daemon runs one prune of a kind at a time (409 to a second); alone, a submission never
    sees that, so its gatekeeper waits the other one out."""
    import concurrent.futures

    gates = [Gatekeeper(namespace, tmp_path) for namespace in (OWN, "gatekeeper02")]

    def prune_often(gate):
        learner = docker.DockerClient(base_url=gate.docker_host, version="auto")
        try:
            for _ in range(15):
                learner.containers.prune()
                learner.networks.prune()
                learner.volumes.prune()
        finally:
            learner.close()

    try:
        for gate in gates:
            gate.start()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(prune_often, gate) for gate in gates]:
                done.result()  # raises APIError 409 "a prune operation is already running"
    finally:
        for gate in gates:
            gate.close()


def test_removing_an_image_never_breaks_another_submissions_build(tmp_path, no_leftovers):
    """Alike builds share cached step images; removing an image deletes the untagged steps
    under it. Without the build-cache lock a removal lands between another build's cache hit
    and its next step, and that build fails ("failed to get digest ... no such file")."""
    import concurrent.futures

    namespaces = (OWN, "gatekeeper02", "gatekeeper03")
    gates = [Gatekeeper(namespace, tmp_path) for namespace in namespaces]

    def build_and_remove(gate):
        learner = docker.DockerClient(base_url=gate.docker_host, version="auto")
        dockerfile = f'FROM {BUSYBOX_IMAGE}\nEXPOSE 8080\nCMD ["sleep", "1"]\n'.encode()
        try:
            for _ in range(15):  # unlocked, about one build in twenty failed here
                learner.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{gate.namespace}-web:1",
                                     labels={"owner": gate.namespace}, rm=True)
                learner.images.remove(f"{gate.namespace}-web:1", force=True)
        finally:
            learner.close()

    try:
        for gate in gates:
            gate.start()
        with concurrent.futures.ThreadPoolExecutor(len(gates)) as pool:
            for done in [pool.submit(build_and_remove, gate) for gate in gates]:
                done.result()
    finally:
        for gate in gates:
            gate.close()


def test_a_long_build_step_does_not_hold_up_another_submissions_removals(tmp_path,
                                                                           no_leftovers):
    """A build lets go of the build-cache lock while a step's container runs: a slow or hanging
    RUN step of one submission must not make every other submission's removals wait."""
    import concurrent.futures
    import time

    gates = [Gatekeeper(namespace, tmp_path) for namespace in (OWN, "gatekeeper02")]
    try:
        for gate in gates:
            gate.start()
        slow, quick = (docker.DockerClient(base_url=gate.docker_host, version="auto")
                       for gate in gates)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            building = pool.submit(slow.images.build, fileobj=io.BytesIO(
                f"FROM {BUSYBOX_IMAGE}\nRUN sleep 8\n".encode()), tag=f"{OWN}-slow:1", rm=True)
            time.sleep(2)  # the slow build is in its RUN step
            quick.images.build(fileobj=io.BytesIO(f"FROM {BUSYBOX_IMAGE}\nCMD [\"true\"]\n"
                                                  .encode()), tag="gatekeeper02-quick:1", rm=True)
            quick.images.remove("gatekeeper02-quick:1")
            assert not building.done(), "the removal waited for the other build's RUN step"
            building.result()
        slow.close()
        quick.close()
    finally:
        for gate in gates:
            gate.close()


def test_a_build_gives_back_no_name_another_submission_moved_meanwhile(tmp_path, client,
                                                                         no_leftovers):
    """While one submission builds, another retags its own image: that name is not restored."""
    gates = [Gatekeeper(namespace, tmp_path) for namespace in (OWN, "gatekeeper02")]
    try:
        for gate in gates:
            gate.start()
        other = docker.DockerClient(base_url=gates[1].docker_host, version="auto")

        def build(message: str):
            dockerfile = f'FROM {BUSYBOX_IMAGE}\nCMD ["echo", "{message}"]\n'.encode()
            return other.images.build(fileobj=io.BytesIO(dockerfile), tag="gatekeeper02-app:1",
                                      rm=True)[0]

        build("old app")
        # A build starts:
        restore = gates[0].policy.images.guard_references(lambda: {f"{OWN}-mine:1"})
        newer = build("new app")
        restore(200)  # the build ends
        assert client.images.get("gatekeeper02-app:1").id == newer.id
        other.close()
    finally:
        for gate in gates:
            gate.close()


def test_the_journal_records_the_submissions_calls_for_the_judge_only(gatekeeper, learner,
                                                                     victim):
    web = learner.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], detach=True, name=f"{OWN}-web")
    web.exec_run(["true"])
    with pytest.raises(NotFound):
        learner.containers.get(f"{OWN}-missing")
    with refused("ownership"):
        learner.api.stop(f"{OTHER}-web")
    assert requests_made(learner) is None  # the submission's own door does not serve it
    judge = docker.DockerClient(base_url=gatekeeper.judge_docker_host, version="auto")
    try:
        journal = requests_made(judge)
        assert {"method": "GET", "path": f"/containers/{OWN}-missing/json", "status": 404,
                "credentials": False} in journal
        assert {"method": "POST", "path": f"/containers/{OTHER}-web/stop", "status": 403,
                "credentials": False} in journal
        judge.containers.get(web.id).exec_run(["true"])
        assert requests_made(judge) == journal  # the judge's own calls are not the submission's
        assert [r["status"] for r in requests_on(judge, web, "exec")] == [201]
        assert requests_on(judge, web, "attach") == []
        stream = learner.api.attach(f"{OWN}-web", stream=True)
        try:  # recorded as soon as the daemon answered, while the stream is still open
            assert [r["status"] for r in requests_on(judge, web, "attach")] == [101]
        finally:
            stream.close()
    finally:
        judge.close()


def test_each_container_shows_its_own_bind_sources_however_many_were_pinned(learner, tmp_path):
    """Pins outlive their containers and are numbered: past ten, pin 1 is a prefix of pin 13,
    and a container made later must still show its own source, not pin 1's with a 3 added."""
    for number in range(14):
        folder = tmp_path / f"data-{chr(ord('a') + number)}"  # not "data-1" + "3"
        folder.mkdir()
        container = learner.containers.create(BUSYBOX_IMAGE, ["true"], name=f"{OWN}-bind",
                                              mounts=[Mount("/data", str(folder), type="bind")])
        try:
            container.reload()
            assert [m["Source"] for m in container.attrs["Mounts"]] == [str(folder)]
            assert container.attrs["HostConfig"]["Mounts"][0]["Source"] == str(folder)
        finally:
            container.remove(force=True)
