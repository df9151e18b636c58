"""Removing every Docker object a namespace created, whatever state it is in, and nothing else.

An object is the namespace's when it carries the namespace label or, for grading namespaces,
its name. The daemon may be shared with other work (an instructor's own containers, another
run, a CI job): what merely appeared while a run went on is reported, never removed. The
course's own images are never removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from .daemon_lock import removing_images
from .settings import COURSE_IMAGES, NAMESPACE_LABEL, PROVISIONED_LABEL

#: How often an image listing is asked again when it trips over an image being removed.
LIST_ATTEMPTS = 10


def list_images(api, **kwargs) -> list[dict]:
    """``api.images(**kwargs)``, asked again when the listing trips over an image removed meanwhile.

    With the containerd image store, Engine 26.1 lists the images and then reads each one's
    content: an image another build or removal deletes in between makes the whole listing fail
    with 404 (*"content digest sha256:...: not found"*), here about one listing in ten while two
    builds came and went. The classic store (and Engine 20.10) never answers a listing 404.
    """
    for attempt in range(LIST_ATTEMPTS):
        try:
            return api.images(**kwargs)
        except NotFound:
            if attempt == LIST_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass
class Removed:
    """What a sweep removed, by kind, plus what it could not remove and why."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __iadd__(self, other: Removed) -> Removed:
        for kind in ("containers", "volumes", "networks", "images", "failures"):
            getattr(self, kind).extend(getattr(other, kind))
        return self

    @property
    def total(self) -> int:
        return len(self.containers) + len(self.volumes) + len(self.networks) + len(self.images)


@dataclass(frozen=True)
class Snapshot:
    """The ids of every container, volume, network and image on the daemon at one moment."""

    containers: frozenset[str]
    volumes: frozenset[str]
    networks: frozenset[str]
    images: frozenset[str]

    @classmethod
    def take(cls, client: docker.DockerClient) -> Snapshot:
        api = client.api
        return cls(
            containers=frozenset(c["Id"] for c in api.containers(all=True)),
            volumes=frozenset(v["Name"] for v in api.volumes().get("Volumes") or []),
            networks=frozenset(n["Id"] for n in api.networks()),
            images=frozenset(i["Id"] for i in list_images(api, all=True)),
        )


def course_image_ids(client: docker.DockerClient) -> set[str]:
    """Ids of the course images, which no sweep may remove.

    An image is one when it has a course image's name, or when its provisioned label names one
    of its own tags (images built FROM a course image inherit the label, but not the tag).
    """
    ids = set()
    for name in COURSE_IMAGES:
        try:
            ids.add(client.api.inspect_image(name)["Id"])
        except (ImageNotFound, NotFound):
            pass
    for image in list_images(client.api, filters={"label": PROVISIONED_LABEL}):
        if (image.get("Labels") or {}).get(PROVISIONED_LABEL) in (image.get("RepoTags") or []):
            ids.add(image["Id"])
    return ids


def _remove(action, ident: str, removed_list: list[str], failures: list[str]) -> None:
    """Run one removal, retrying while the daemon reports the object busy."""
    for attempt in range(5):
        try:
            action()
        except NotFound:
            return
        except APIError as error:
            if error.status_code == 409 and attempt < 4:
                time.sleep(0.2 * (attempt + 1))
                continue
            failures.append(f"{ident}: {error.explanation or error}")
            return
        removed_list.append(ident)
        return


def _remove_objects(
    client: docker.DockerClient,
    containers: set[str],
    networks: set[str],
    volumes: set[str],
    images: set[str],
) -> Removed:
    """Remove the given ids in dependency order: containers, networks, volumes, images."""
    api = client.api
    removed = Removed()
    for cid in containers:
        _remove(lambda c=cid: api.remove_container(c, v=True, force=True), cid[:12],
                removed.containers, removed.failures)
    for nid in networks:
        _remove(lambda n=nid: _remove_network(api, n), nid[:12], removed.networks, removed.failures)
    for name in volumes:
        _remove(lambda v=name: api.remove_volume(v, force=True), name, removed.volumes,
                removed.failures)
    if images:
        _remove_images(client, images - course_image_ids(client), removed)
    return removed


def _remove_images(client: docker.DockerClient, images: set[str], removed: Removed) -> None:
    """Remove images children first: a parent with a child left cannot be removed, even forced.

    Newest first usually puts children before parents; further passes take what a child still
    held back (a parent and child built in the same second).
    """
    if not images:
        return
    api = client.api
    created = {i["Id"]: i.get("Created", 0) for i in list_images(api, all=True)}
    pending = sorted(images, key=lambda i: created.get(i, 0), reverse=True)
    with removing_images():
        for _ in range(3):
            failures: list[str] = []
            for iid in pending:
                _remove(lambda i=iid: api.remove_image(i, force=True),
                        iid.removeprefix("sha256:")[:12], removed.images, failures)
            left = {i for i in pending if i in {x["Id"] for x in list_images(api, all=True)}}
            if not left or len(left) == len(pending):
                removed.failures.extend(failures)
                return
            pending = [i for i in pending if i in left]


def _remove_network(api, network_id: str) -> None:
    """Disconnect whatever is still attached, then remove the network."""
    for container in (api.inspect_network(network_id).get("Containers") or {}):
        try:
            api.disconnect_container_from_network(container, network_id, force=True)
        except NotFound:
            pass
    api.remove_network(network_id)


def remove_namespace(
    client: docker.DockerClient, namespace: str, *, match_names: bool = False,
    label: str = NAMESPACE_LABEL,
) -> Removed:
    """Remove every object whose ``label`` (the namespace label unless told) is ``namespace``.

    With ``match_names`` also containers, volumes and networks whose name contains it: safe only
    for grading namespaces, which are fixed-length hashes that cannot occur inside another name.
    One listing per kind serves both nets: every submission is swept three times, so the calls
    add up on a daemon that many workers share.
    """
    api = client.api

    def owned(obj: dict, *names: str) -> bool:
        return (obj.get("Labels") or {}).get(label) == namespace or (
            match_names and any(namespace in name for name in names))

    containers = {c["Id"] for c in api.containers(all=True) if owned(c, *c.get("Names") or [])}
    networks = {n["Id"] for n in api.networks() if owned(n, n["Name"])}
    volumes = {v["Name"] for v in api.volumes().get("Volumes") or [] if owned(v, v["Name"])}
    listed = list_images(api, all=True)
    images = {i["Id"] for i in listed if owned(i)}
    tags = {tag for i in listed for tag in i.get("RepoTags") or []
            if match_names and namespace in tag}
    removed = _remove_objects(client, containers, networks, volumes, images)
    # By name, not by id: two submissions that build alike share one image (the build cache
    # gives the same id), and removing it by id would take the other submission's name too.
    # A name the image shares is only untagged; the image goes with its last name.
    with removing_images() if tags else nullcontext():
        for tag in sorted(tags):
            _remove(lambda t=tag: api.remove_image(t, force=True), tag, removed.images,
                    removed.failures)
    return removed


def strays(client: docker.DockerClient, before: Snapshot) -> list[str]:
    """What appeared after ``before`` and is still there, described for a report.

    These are left alone: nothing proves the run created them (the daemon may be busy with
    other work), so a sweep may not touch them. A grading run names them so that an object
    a submission made outside the sandbox's reach does not go unnoticed.
    """
    after = Snapshot.take(client)
    found = []
    for kind in ("containers", "volumes", "networks", "images"):
        old = getattr(before, kind)
        found += [f"{kind[:-1]} {ident.removeprefix('sha256:')[:12]}"
                  for ident in getattr(after, kind) if ident not in old]
    return found


@contextmanager
def swept(client: docker.DockerClient, namespace: str) -> Iterator[Removed]:
    """Guarantee that whatever runs inside leaves nothing of ``namespace`` behind."""
    removed = Removed()
    try:
        yield removed
    finally:
        removed += remove_namespace(client, namespace, match_names=True)
