"""Sweeping a namespace on a real daemon: everything of its own goes, nothing else does."""

import docker
import pytest

from graders.lab import labels
from graders.settings import BUSYBOX_IMAGE
from graders.sweep import Snapshot, course_image_ids, remove_namespace, strays, swept

pytestmark = pytest.mark.docker


def _sleeper(client, name, namespace=None, **kwargs):
    return client.containers.run(BUSYBOX_IMAGE, ["sleep", "60"], name=name, detach=True,
                                 labels=labels(namespace) if namespace else {}, **kwargs)


def test_removes_labelled_objects_of_every_kind_and_spares_others(client, no_leftovers):
    mine, other = "nsaaaaaaaaaa", "nsbbbbbbbbbb"
    net = client.networks.create(f"{mine}-net", labels=labels(mine))
    vol = client.volumes.create(f"{mine}-vol", labels=labels(mine))
    running = _sleeper(client, f"{mine}-run", mine, network=net.name,
                       volumes={vol.name: {"bind": "/data", "mode": "rw"}})
    paused = _sleeper(client, f"{mine}-paused", mine)
    paused.pause()
    theirs = _sleeper(client, f"{other}-run", other)
    try:
        removed = remove_namespace(client, mine)
        assert len(removed.containers) == 2 and removed.volumes == [vol.name]
        assert len(removed.networks) == 1 and not removed.failures
        assert {c.id for c in client.containers.list(all=True)} >= {theirs.id}
        assert running.id not in {c.id for c in client.containers.list(all=True)}
    finally:
        theirs.remove(force=True)


def test_name_matching_never_treats_a_prefix_as_a_match(client, no_leftovers):
    """`ps1-alice` must not sweep `ps1-alice-2`: namespaces are fixed-length hashes."""
    a = _sleeper(client, "nscccccccccc-web")
    b = _sleeper(client, "nsccccccccccd-web")  # a different, longer token
    try:
        removed = remove_namespace(client, "nsccccccccccd", match_names=True)
        assert removed.containers == [b.id[:12]]
        a.reload()
        assert a.status == "running"
    finally:
        a.remove(force=True)


def test_unlabelled_newcomers_are_reported_and_left_alone(client, no_leftovers):
    """Whatever appeared meanwhile may be someone else's work on a shared daemon."""
    before = Snapshot.take(client)
    anonymous = _sleeper(client, None)
    volume = client.volumes.create()
    try:
        found = strays(client, before)
        assert f"container {anonymous.id[:12]}" in found and f"volume {volume.name[:12]}" in found
        anonymous.reload()
        assert anonymous.status == "running" and client.volumes.get(volume.name)
    finally:
        anonymous.remove(force=True)
        volume.remove()


def test_course_images_survive_a_sweep_of_a_namespace_that_tagged_them(client):
    protected = course_image_ids(client)
    alias = "nsgggggggggg-alias:1"
    client.images.get(BUSYBOX_IMAGE).tag(alias)
    removed = remove_namespace(client, "nsgggggggggg", match_names=True)
    assert removed.images == [alias] and course_image_ids(client) == protected


def test_swept_cleans_up_even_when_the_body_raises(client, no_leftovers):
    with pytest.raises(RuntimeError), swept(client, "nsffffffffff") as removed:
        _sleeper(client, "nsffffffffff-x", "nsffffffffff")
        raise RuntimeError("submission crashed")
    assert len(removed.containers) == 1


def test_an_image_shared_with_another_namespace_loses_only_this_ones_name(client, no_leftovers):
    """Two submissions that build alike share one image id (build cache): sweeping one of them
    must leave the other's name and image."""
    image = client.images.get(BUSYBOX_IMAGE)
    shared = client.containers.create(BUSYBOX_IMAGE, ["true"])
    try:
        built = shared.commit("nsaaaaaaaaaa-shared", "1")
    finally:
        shared.remove()
    built.tag("nsbbbbbbbbbb-shared", "1")
    try:
        removed = remove_namespace(client, "nsbbbbbbbbbb", match_names=True)
        assert removed.images == ["nsbbbbbbbbbb-shared:1"] and not removed.failures
        assert client.images.get(built.id).tags == ["nsaaaaaaaaaa-shared:1"]
        remove_namespace(client, "nsaaaaaaaaaa", match_names=True)
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(built.id)
    finally:
        for name in ("nsaaaaaaaaaa-shared:1", "nsbbbbbbbbbb-shared:1"):
            try:
                client.images.remove(name, force=True)
            except docker.errors.ImageNotFound:
                pass
    assert client.images.get(image.id)
