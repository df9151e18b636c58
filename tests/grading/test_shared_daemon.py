"""Grading on a daemon that is busy with other work leaves that work alone, in every mode.

A neighbour process (an instructor's own `docker run`s, another CI job) creates and removes
unlabelled containers, volumes, networks and an image while a batch is graded. Afterwards every
object the neighbour kept is still there, and nothing of the batch is left: what the batch's
submissions made (named, labelled, anonymous volumes, a built image) is removed, known as theirs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import builders as b
import docker
import pytest
from conftest import daemon_objects
from nbformat.v4 import new_code_cell

from graders.grading import GradingOptions, grade_assignment
from graders.release import generate_release

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: A submission that leaves something of every kind behind, one volume anonymous.
MAKE_THINGS = textwrap.dedent("""\
    import io

    def make_things(client, image, namespace, labels):
        ### BEGIN SOLUTION
        network = client.networks.create(f"{namespace}-net", labels=labels)
        volume = client.volumes.create(f"{namespace}-vol", labels=labels)
        client.containers.run(image, ["sleep", "300"], name=f"{namespace}-box", labels=labels,
                              network=network.name, detach=True,
                              volumes={volume.name: {"bind": "/data", "mode": "rw"}})
        scratch = client.containers.create(image, ["true"], name=f"{namespace}-tmp",
                                           labels=labels, volumes=["/anonymous"])
        scratch.remove()  # without v=True: its anonymous volume stays
        dockerfile = f"FROM {image}\\nRUN echo {namespace} > /made\\n".encode()
        client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{namespace}-img", rm=True)
        return network
        ### END SOLUTION
""")
MAKE_THINGS_TESTS = ('net = make_things(client, BUSYBOX_IMAGE, NAMESPACE, LABELS)\n'
                     'assert net.name.endswith("-net"), "make_things should return the network"')

#: The neighbour: unlabelled objects, some kept and some removed, until told to stop.
NEIGHBOUR = textwrap.dedent("""\
    import io, json, sys, time, uuid
    from pathlib import Path
    import docker

    client = docker.from_env()
    record, stop = Path(sys.argv[1]), Path(sys.argv[2])
    token = uuid.uuid4().hex[:8]
    dockerfile = f"FROM busybox:1.35.0\\nLABEL neighbour={token}\\n".encode()
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), rm=True)
    kept = {"containers": [], "volumes": [], "networks": [], "images": [image.id]}
    gone = {"containers": [], "volumes": [], "networks": []}
    round = 0
    while not stop.exists() or round < 3:
        made = (client.containers.run("busybox:1.35.0", ["sleep", "600"], detach=True,
                                      name=f"neighbour-{token}-{round}"),
                client.volumes.create(), client.networks.create(f"neighbour-{token}-{round}"))
        for kind, thing in zip(("containers", "volumes", "networks"), made):
            ident = thing.name if kind == "volumes" else thing.id
            (gone if round % 2 else kept)[kind].append(ident)
        record.write_text(json.dumps({"kept": kept, "gone": gone}))
        if round % 2:
            for thing in made:
                thing.remove(**({"force": True} if hasattr(thing, "exec_run") else {}))
        round += 1
        time.sleep(0.5)
""")


def _busy_course(root: Path, students: int) -> Path:
    source = b.mini_source()
    source.cells += [
        new_code_cell(MAKE_THINGS, id="things-solution",
                      metadata=b._nbgrader("things-solution", solution=True)),
        new_code_cell(MAKE_THINGS_TESTS, id="things-tests",
                      metadata=b._nbgrader("things-tests", grade=True, locked=True, points=1)),
    ]
    b.course_folder(root, source)
    generate_release(root, root / "release", assignments=[b.MINI])
    for index in range(students):
        b.submit(root, f"student{index}", b.solved(root))
    return root


def _remove(client, kept: dict) -> None:
    for ident in kept["containers"]:
        client.api.remove_container(ident, force=True)
    for ident in kept["networks"]:
        client.api.remove_network(ident)
    for name in kept["volumes"]:
        client.api.remove_volume(name)
    for ident in kept["images"]:
        client.api.remove_image(ident, force=True)


def _grade_beside_a_neighbour(tmp_path, client, options_for):
    root = _busy_course(tmp_path / "course", 2)
    before = daemon_objects(client)
    record, stop = tmp_path / "neighbour.json", tmp_path / "stop"
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(record), str(stop)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert record.exists(), neighbour.stdout.read() if neighbour.poll() is not None else ""
        batch = grade_assignment(root, b.MINI, options_for())
    finally:
        stop.touch()
        output, _ = neighbour.communicate(timeout=60)
    made = json.loads(record.read_text())
    kept = made["kept"]
    try:
        assert neighbour.returncode == 0, output
        return root, batch, before, made
    except BaseException:
        _remove(client, kept)
        raise


def _assert_neighbour_intact_and_batch_gone(root, client, batch, before, kept,
                                           extra=frozenset()):
    now = daemon_objects(client)
    try:
        assert [(r.status.value, r.score) for r in batch.results] == [("graded", 4.0)] * 2, \
            {r.student: b.cell_errors(root, r.student, b.MINI) for r in batch.results}
        for kind, idents in kept.items():
            missing = set(idents) - now[kind]
            assert not missing, f"the batch removed the neighbour's {kind}: {missing}"
        left = {kind: now[kind] - before[kind] - set(kept[kind]) - extra for kind in now}
        assert not any(left.values()), f"the batch left behind: {left}"
    finally:
        _remove(client, kept)


def test_a_gatekept_batch_leaves_a_busy_neighbour_alone(tmp_path, client, no_leftovers):
    root, batch, before, made = _grade_beside_a_neighbour(
        tmp_path, client, lambda: GradingOptions(workers=2, feedback=False))
    _assert_neighbour_intact_and_batch_gone(root, client, batch, before, made["kept"])
    # What appeared meanwhile is reported, not removed: here only the neighbour's objects.
    neighbours = {f"{kind[:-1]} {ident.removeprefix('sha256:')[:12]}"
                  for record in made.values() for kind, idents in record.items()
                  for ident in idents}
    assert batch.strays and set(batch.strays) <= neighbours, batch.strays


def test_a_dask_batch_leaves_a_busy_neighbour_alone(tmp_path, client, no_leftovers):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        root, batch, before, made = _grade_beside_a_neighbour(
            tmp_path, client,
            lambda: GradingOptions(scheduler=cluster.scheduler_address, feedback=False))
    _assert_neighbour_intact_and_batch_gone(root, client, batch, before, made["kept"])


def test_an_ungatekept_batch_leaves_a_busy_neighbour_alone(tmp_path, client, no_leftovers):
    """Without the gatekeeper only names and labels tell what is the batch's: the anonymous
    volume each submission left is reported as a stray, not removed, like the neighbour's."""
    root, batch, before, made = _grade_beside_a_neighbour(
        tmp_path, client, lambda: GradingOptions(workers=2, feedback=False, gatekeeper=False))
    anonymous = ({v.name for v in client.volumes.list()} - before["volumes"]
                 - set(made["kept"]["volumes"]))
    try:
        assert len(anonymous) == 2, anonymous
        assert all(f"volume {name[:12]}" in batch.strays for name in anonymous)
        _assert_neighbour_intact_and_batch_gone(root, client, batch, before, made["kept"],
                                               extra=anonymous)
    finally:
        for name in anonymous:
            try:
                client.api.remove_volume(name)
            except docker.errors.NotFound:
                pass
