"""What one submission owns on the daemon, known from the daemon's own answers.

Containers, volumes and networks carry the gatekeeper's label, stamped when they were created
through it. Images that carry no label (built ones) are owned by id, as the daemon reported
them (a build's final image id, then its parents; a commit's or import's answer; a load's or
pull's new images), never by text a submission can print. Image names are owned once the
operation that set them succeeded, and given up once they are removed. A reference a rule
checked is passed to the daemon as the full id it resolved to, so the daemon acts on the object
that was checked, not on whatever the name or prefix means a moment later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import docker
from docker.errors import NotFound

from ..settings import GATEKEEPER_LABEL
from ..sweep import course_image_ids
from .rules import Refused, normalise

PREDEFINED_NETWORKS = ("bridge", "host", "none", "default")


class Ownership:
    """The submission's objects: checked against the daemon, remembered where ids are final."""

    def __init__(self, namespace: str, client: docker.DockerClient) -> None:
        self.namespace = namespace
        self.api = client.api
        self.label = f"{GATEKEEPER_LABEL}={namespace}"
        self.references: set[str] = set()
        self.image_ids: set[str] = set()
        self.container_ids: set[str] = set()
        self.exec_ids: set[str] = set()
        #: Volumes the submission's containers mount (anonymous ones carry no label), by name
        #: from the daemon's answers: still the submission's after their container goes.
        self.volume_names: set[str] = set()
        #: Containers whose volumes are in ``volume_names`` already.
        self.mounts_seen: set[str] = set()
        self._base_references: set[str] = set()
        self.lock = threading.Lock()
        self.base_ids = course_image_ids(client)

    def labelled(self, labels: dict | None) -> bool:
        return (labels or {}).get(GATEKEEPER_LABEL) == self.namespace

    @staticmethod
    def inspect(inspect: Callable, ident: str) -> dict | None:
        try:
            return inspect(ident)
        except NotFound:
            return None

    # -- containers ------------------------------------------------------------------------

    def container(self, ident: str) -> str | None:
        """The full id of the submission's container ``ident``; None if there is none.

        Someone else's is refused. Full ids once seen as its own are remembered (a container
        id is never reused), which spares a lookup for most calls: docker-py uses full ids.
        """
        with self.lock:
            if ident in self.container_ids:
                return ident
        found = self.inspect(self.api.inspect_container, ident)
        if found is None:
            return None
        self.check_container(found, ident)
        return found["Id"]

    def check_container(self, found: dict, ident: str) -> None:
        if not self.labelled((found.get("Config") or {}).get("Labels")):
            raise Refused("ownership", f"container {ident!r} belongs to someone else")
        with self.lock:
            self.container_ids.add(found["Id"])

    # -- images ------------------------------------------------------------------------------

    def image(self, ident: str) -> dict | None:
        return self.inspect(self.api.inspect_image, ident)

    def own_image(self, image: dict) -> bool:
        with self.lock:
            named = {normalise(t) for t in image.get("RepoTags") or []} & self.references
            claimed = image["Id"] in self.image_ids
        return self.labelled((image.get("Config") or {}).get("Labels")) or bool(named) or claimed

    def listed_image_is_own(self, image: dict) -> bool:
        return self.own_image({"Id": image["Id"], "RepoTags": image.get("RepoTags"),
                               "Config": {"Labels": image.get("Labels")}})

    def readable_image(self, ident: str) -> dict | None:
        """Refuse reading someone else's image; the course images, and the own, are readable.

        A name found to be a course image's is not looked up again: no submission can move a
        course image's name, and a load that does is undone at once.
        """
        with self.lock:
            if ident in self._base_references:
                return None
        image = self.image(ident)
        if image is not None and image["Id"] in self.base_ids:
            with self.lock:
                self._base_references.add(ident)
        elif image is not None and not self.own_image(image):
            raise Refused("ownership", f"image {ident!r} belongs to someone else")
        return image

    def writable_image(self, image: dict | None, what: str) -> None:
        """Refuse changing a course image or someone else's; a missing one is the daemon's."""
        if image is not None and image["Id"] in self.base_ids:
            raise Refused("base-images-read-only",
                          f"{what} is a course image's, which stays read-only")
        if image is not None and not self.own_image(image):
            raise Refused("ownership", f"{what} belongs to someone else")

    def free_reference(self, reference: str) -> str:
        """A name this submission may give an image: not a course image's, not someone else's."""
        name = normalise(reference)
        self.writable_image(self.image(name), f"image name {name!r}")
        return name

    def name_images(self, *references: str) -> None:
        with self.lock:
            self.references.update(normalise(r) for r in references if r)

    def unname_image(self, reference: str) -> None:
        with self.lock:
            self.references.discard(normalise(reference))

    def claim_images(self, *ids: str) -> None:
        base = set(self.base_ids)
        with self.lock:
            self.image_ids.update(i for i in ids if i and i not in base)

    def claim_built(self, final: str, starts: set[str]) -> None:
        """A build's final image and its parents, up to an image the build started from."""
        chain, ident = [], final
        while ident and ident not in starts and ident not in self.base_ids:
            chain.append(ident)
            found = self.image(ident)
            ident = (found or {}).get("Parent") or ""
        self.claim_images(*chain)

    # -- volumes and networks ------------------------------------------------------------

    def note_mounts(self, container: dict) -> None:
        """Remember the volumes of one of the submission's containers (an inspect or a list
        entry). Every named one was checked as the submission's before the create."""
        names = {mount["Name"] for mount in container.get("Mounts") or []
                 if mount.get("Type") == "volume" and mount.get("Name")}
        with self.lock:
            self.volume_names |= names
            if container.get("Id"):
                self.mounts_seen.add(container["Id"])

    def mounted_by_own_containers(self) -> set[str]:
        """Volumes this submission's containers mount: anonymous ones carry no label."""
        return {mount["Name"] for container in self.api.containers(all=True, filters={
            "label": self.label}) for mount in container.get("Mounts") or [] if mount.get("Name")}

    def volume(self, name: str) -> dict | None:
        found = self.inspect(self.api.inspect_volume, name)
        if found is not None and not self.labelled(found.get("Labels")) \
                and name not in self.volume_names and name not in self.mounted_by_own_containers():
            raise Refused("ownership", f"volume {name!r} belongs to someone else")
        return found

    def network(self, ident: str, writable: bool = False) -> str:
        """The reference to pass on for network ``ident``: its name, or its full id for an id.

        The daemon's predefined networks may be used, never changed.
        """
        found = self.inspect(self.api.inspect_network, ident)
        if found is None:
            return ident
        if not self.labelled(found.get("Labels")):
            if found["Name"] not in PREDEFINED_NETWORKS:
                raise Refused("ownership", f"network {ident!r} belongs to someone else")
            if writable:
                raise Refused("ownership", f"network {ident!r} is the daemon's own")
        return ident if ident == found["Name"] else found["Id"]
