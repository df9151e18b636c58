"""What one submission may do on the daemon: every endpoint it can reach, and on what terms.

Deny by default: an endpoint not in ``ROUTES`` is refused with its name. Allowed endpoints
stamp the submission's label on what they create, see only the submission's own objects (and
the course's base images, read-only), and refuse host-level powers with a message naming the
rule. Ownership is read from the daemon at the time of each request, except for the
containers and execs the submission created or was shown as its own (ids are never reused).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
from docker.errors import APIError, NotFound

from ..daemon_lock import BuildHold, removing_images
from ..settings import GATEKEEPER_LABEL
from ..sweep import course_image_ids
from .http import Request, Response, json_response
from .rules import (
    Limits,
    Refused,
    apply_limits,
    check_bind_source,
    check_privileges,
    filter_flag,
    normalise,
    prune_filter,
    registry_of,
    split_reference,
)

PREDEFINED_NETWORKS = ("bridge", "host", "none", "default")
LOCAL_HOSTS = ("127.0.0.1", "localhost")
#: How often a prune is tried while another submission's prune of the same kind runs (~20 s).
PRUNE_ATTEMPTS = 20
#: The names a load announces, inside JSON strings: a name ends at whitespace, a quote or "\n".
LOADED = re.compile(r"Loaded image(?: ID)?: ([^\s\"\\]+)")
# Image ids in a build's output ("--->" arrives JSON-escaped): intermediate images carry no label.
BUILT = re.compile(rb"(?:---(?:>|\\u003e) |Successfully built |\"stream\":\"sha256:)([0-9a-f]{12})")
#: A build step's container appears ("---> Running in <id>") and goes ("Removing intermediate
#: container <id>"), as the classic builder reports them.
STEP_CONTAINER = re.compile(rb"(Running in|Removing intermediate container) [0-9a-f]{12}")


@dataclass
class Forward:
    """Pass the request on, possibly rewritten; optionally rewrite the answer or act after it."""

    request: Request
    body: bytes | None = None
    transform: Callable[[Response], Response] | None = None
    after: Callable[[], None] | None = None
    observe: Callable[[bytes], None] | None = None
    #: A lock held from sending the request until its answer has been passed on.
    hold: Callable[[], AbstractContextManager] | None = None


@dataclass
class Answer:
    """Answer the request here: the gatekeeper did the work itself."""

    response: Response


def _without_own_label(found):
    """The gatekeeper's label taken out of every ``Labels``: exercises see only their own."""
    if isinstance(found, list):
        return [_without_own_label(item) for item in found]
    if isinstance(found, dict):
        labels = found.get("Labels")
        if isinstance(labels, dict):
            labels.pop(GATEKEEPER_LABEL, None)
        return {key: _without_own_label(value) for key, value in found.items()}
    return found


def _json_transform(edit: Callable = lambda found: found) -> Callable[[Response], Response]:
    """Rewrite a JSON answer with ``edit``, then hide the gatekeeper's label in it."""
    def transform(response: Response) -> Response:
        if response.status == 200 and response.body.strip():
            response.body = json.dumps(_without_own_label(edit(json.loads(response.body))))\
                .encode()
        return response
    return transform


def _inspected(request: Request) -> Callable[[Response], Response] | None:
    """Inspect answers lose the gatekeeper's label; other answers stream through untouched."""
    return _json_transform() if request.method == "GET" and (
        request.path.endswith("/json") or request.path.startswith(("/volumes/", "/networks/"))
    ) else None


def _named(request: Request) -> str:
    """The image name a tag, commit or import gives: ``repo`` may carry the tag itself."""
    repository, tag = request.param("repo"), request.param("tag")
    return f"{repository}:{tag}" if tag else repository


def _with_label_filter(request: Request, label: str, param: str = "filters") -> Request:
    """Add ``label=<namespace>`` to a list, prune or events filter, keeping the caller's own."""
    try:
        filters = json.loads(request.param(param) or "{}")
    except json.JSONDecodeError:
        raise Refused("bad-filters", "the filters parameter is not JSON", 400) from None
    if isinstance(filters.get("label"), dict):
        filters["label"][label] = True
    else:
        filters["label"] = [*(filters.get("label") or []), label]
    rest = [(k, v) for k, v in request.query if k != param]
    return request.with_query([*rest, (param, json.dumps(filters))])


class Policy:
    """The rules for one submission, identified by its namespace."""

    def __init__(self, namespace: str, scratch: Path, client: docker.DockerClient,
                 limits: Limits) -> None:
        self.namespace = namespace
        self.scratch = scratch
        self.api = client.api
        self.limits = limits
        self.label = f"{GATEKEEPER_LABEL}={namespace}"
        self.references: set[str] = set()
        self.image_ids: set[str] = set()
        self._own_container_ids: set[str] = set()
        self._own_exec_ids: set[str] = set()
        self._base_references: set[str] = set()
        self._created = 0
        self._lock = threading.Lock()
        self.base_ids = course_image_ids(client)
        self.routes: list[tuple[set[str], re.Pattern, Callable, bool]] = [
            ({"GET", "HEAD"}, re.compile(r"/_ping|/version|/info"), self.allow, False),
            ({"POST"}, re.compile(r"/containers/create"), self.create_container, True),
            ({"GET"}, re.compile(r"/containers/json"), self.list_containers, False),
            ({"POST"}, re.compile(r"/containers/prune"), self.prune, False),
            ({"POST"}, re.compile(r"/containers/([^/]+)/update"), self.update_container, True),
            ({"POST"}, re.compile(r"/containers/([^/]+)/exec"), self.create_exec, True),
            ({"GET"}, re.compile(r"/containers/([^/]+)/attach/ws"), self.refuse_endpoint, False),
            ({"GET", "HEAD", "POST", "PUT", "DELETE"},
             re.compile(r"/containers/(.+?)(/(?:json|logs|start|stop|restart|kill|wait|pause|"
                        r"unpause|top|changes|export|stats|resize|attach|archive|rename))?"),
             self.container_call, False),
            ({"GET", "POST"}, re.compile(r"/exec/([^/]+)/(start|resize|json)"), self.exec_call,
             False),
            ({"GET"}, re.compile(r"/images/json"), self.list_images, False),
            ({"POST"}, re.compile(r"/images/create"), self.create_image, False),
            ({"POST"}, re.compile(r"/images/load"), self.load_images, False),
            ({"GET"}, re.compile(r"/images/get"), self.save_images, False),
            ({"POST"}, re.compile(r"/images/prune"), self.prune_images, False),
            ({"POST"}, re.compile(r"/images/(.+)/tag"), self.tag_image, False),
            ({"POST"}, re.compile(r"/images/(.+)/push"), self.push_image, False),
            ({"GET"}, re.compile(r"/images/(.+)/(json|history|get)"), self.read_image, False),
            ({"DELETE"}, re.compile(r"/images/(.+)"), self.remove_image, False),
            ({"POST"}, re.compile(r"/build"), self.build, False),
            ({"POST"}, re.compile(r"/commit"), self.commit, False),
            ({"GET"}, re.compile(r"/volumes"), self.list_volumes, False),
            ({"POST"}, re.compile(r"/volumes/create"), self.create_volume, True),
            ({"POST"}, re.compile(r"/volumes/prune"), self.prune, False),
            ({"GET", "DELETE"}, re.compile(r"/volumes/([^/]+)"), self.volume_call, False),
            ({"GET"}, re.compile(r"/networks"), self.list_networks, False),
            ({"POST"}, re.compile(r"/networks/create"), self.create_network, True),
            ({"POST"}, re.compile(r"/networks/prune"), self.prune, False),
            ({"POST"}, re.compile(r"/networks/([^/]+)/(connect|disconnect)"),
             self.connect_network, True),
            ({"GET", "DELETE"}, re.compile(r"/networks/([^/]+)"), self.network_call, False),
            ({"GET"}, re.compile(r"/events"), self.events, False),
            ({"GET"}, re.compile(r"/system/df"), self.disk_usage, False),
            ({"POST"}, re.compile(r"/auth"), self.login, True),
        ]

    # -- routing -----------------------------------------------------------------------------

    def route(self, request: Request) -> tuple[Callable, tuple[str, ...], bool]:
        """The handler for a request, the path's captured names, and whether it reads the body."""
        for methods, pattern, handler, needs_body in self.routes:
            match = pattern.fullmatch(request.path)
            if match and request.method in methods:
                return handler, match.groups(), needs_body
        return self.refuse_endpoint, (), False

    def refuse_endpoint(self, request: Request, *_) -> Forward:
        raise Refused("endpoint-not-allowed",
                      f"{request.method} {request.path} is not available to a submission "
                      f"(daemon-wide, swarm, plugin and unlisted endpoints are closed)")

    def allow(self, request: Request, *_) -> Forward:
        return Forward(request)

    # -- ownership ---------------------------------------------------------------------------

    def _labelled(self, attributes: dict | None) -> bool:
        return (attributes or {}).get(GATEKEEPER_LABEL) == self.namespace

    def _inspect(self, inspect: Callable, ident: str) -> dict | None:
        try:
            return inspect(ident)
        except NotFound:
            return None

    def own_container(self, ident: str, refuse: bool = True) -> bool:
        """Whether the container is this submission's; a missing one is left to the daemon.

        Full ids once seen as its own are remembered (a container id is never reused), which
        spares a lookup for most calls: docker-py addresses containers by full id.
        """
        with self._lock:
            if ident in self._own_container_ids:
                return True
        found = self._inspect(self.api.inspect_container, ident)
        if found is None:
            return True
        if self._labelled(found["Config"].get("Labels")):
            with self._lock:
                self._own_container_ids.add(found["Id"])
            return True
        if refuse:
            raise Refused("ownership", f"container {ident!r} belongs to someone else")
        return False

    def _remember(self, ids: set[str]) -> Callable[[Response], Response]:
        """Note the id a create answers with: later calls on it need no ownership lookup."""
        def transform(response: Response) -> Response:
            if response.status == 201 and response.body.strip():
                with self._lock:
                    ids.add(json.loads(response.body)["Id"])
            return response
        return transform

    def _own_in_answer(self, ident: str) -> Callable[[Response], Response]:
        """Check an inspected container's ownership in the daemon's answer itself.

        The same rule as ``own_container`` without asking the daemon twice: a container the
        exercises look up by name is inspected once, and refused if it is someone else's.
        """
        def transform(response: Response) -> Response:
            if response.status != 200 or not response.body.strip():
                return response
            found = json.loads(response.body)
            if not self._labelled((found.get("Config") or {}).get("Labels")):
                raise Refused("ownership", f"container {ident!r} belongs to someone else")
            with self._lock:
                self._own_container_ids.add(found["Id"])
            response.body = json.dumps(_without_own_label(found)).encode()
            return response
        return transform

    def _image(self, ident: str) -> dict | None:
        return self._inspect(self.api.inspect_image, ident)

    def _own_image(self, image: dict) -> bool:
        with self._lock:
            tracked = {normalise(t) for t in image.get("RepoTags") or []} & self.references
            built = image["Id"].removeprefix("sha256:")[:12] in self.image_ids
        return (self._labelled((image.get("Config") or {}).get("Labels"))
                or bool(tracked) or built)

    def readable_image(self, ident: str) -> None:
        """Refuse reading someone else's image; course images, and the own, are readable.

        A name found to be a course image's is not looked up again: no submission can move a
        course image's name (``free_reference``), and a load that does is undone at once.
        """
        with self._lock:
            if ident in self._base_references:
                return
        image = self._image(ident)
        if image is not None and image["Id"] in self.base_ids:
            with self._lock:
                self._base_references.add(ident)
        elif image is not None and not self._own_image(image):
            raise Refused("ownership", f"image {ident!r} belongs to someone else")

    def free_reference(self, reference: str) -> str:
        """A name this submission may give an image: not a course image's, not someone else's."""
        name = normalise(reference)
        self._writable_image(self._image(name), f"image name {name!r}")
        return name

    def _writable_image(self, image: dict | None, what: str) -> None:
        """Refuse changing a course image or someone else's; a missing one is the daemon's."""
        if image is not None and image["Id"] in self.base_ids:
            raise Refused("base-images-read-only",
                          f"{what} is a course image's, which stays read-only")
        if image is not None and not self._own_image(image):
            raise Refused("ownership", f"{what} belongs to someone else")

    def track(self, *references: str) -> None:
        with self._lock:
            self.references.update(normalise(r) for r in references if r)

    def published_ports(self, own: bool) -> set[str]:
        """Host ports published by this submission's containers, or by anyone's."""
        ports = set()
        for container in self.api.containers(filters={"label": self.label} if own else None):
            ports |= {str(p["PublicPort"]) for p in container.get("Ports") or []
                      if p.get("PublicPort")}
        return ports

    def own_registry(self, host: str, action: str, in_stream: bool = False) -> None:
        """Only a registry this submission runs itself: a local port its containers publish.

        A local port no container publishes holds nobody's registry: the daemon may try it
        and report its own error, as an exercise on failed pushes expects.
        """
        name, _, port = host.rpartition(":")
        if name in LOCAL_HOSTS and (port in self.published_ports(own=True)
                                    or port not in self.published_ports(own=False)):
            return
        raise Refused("own-registry-only",
                      f"{action} would reach {host or 'Docker Hub'}: only a registry this "
                      f"submission runs on 127.0.0.1 is allowed", in_stream=in_stream)

    # -- containers --------------------------------------------------------------------------

    def create_container(self, request: Request, body: bytes, *_) -> Forward:
        spec = json.loads(body or b"{}")
        host = spec.get("HostConfig") or {}
        check_privileges(host)
        for mode in ("NetworkMode", "PidMode", "IpcMode"):
            value = host.get(mode) or ""
            if value.startswith("container:"):
                self.own_container(value.removeprefix("container:"))
        network = host.get("NetworkMode") or ""
        if network and network not in PREDEFINED_NETWORKS and ":" not in network:
            self.own_network(network)
        for name in ((spec.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}):
            if name not in PREDEFINED_NETWORKS:
                self.own_network(name)
        self._check_mounts(host)
        for source in host.get("VolumesFrom") or []:
            self.own_container(source.split(":")[0])
        for link in host.get("Links") or []:
            self.own_container(link.split(":")[0].lstrip("/"))
        if spec.get("Image"):
            self.readable_image(spec["Image"])
        self._check_container_cap()
        spec["Labels"] = {**(spec.get("Labels") or {}), GATEKEEPER_LABEL: self.namespace}
        spec["HostConfig"] = apply_limits(host, self.limits)
        return Forward(request, json.dumps(spec).encode(),
                       transform=self._remember(self._own_container_ids))

    def _check_container_cap(self) -> None:
        """Refuse a container past the cap; counted on the daemon only once it could be reached.

        Only this gatekeeper's creates carry the submission's label, so while fewer were asked
        for than the cap allows, the count cannot be at the cap.
        """
        with self._lock:
            self._created += 1
            could_reach = self._created > self.limits.max_containers
        if not could_reach:
            return
        count = len(self.api.containers(all=True, filters={"label": self.label}))
        if count >= self.limits.max_containers:
            raise Refused("container-cap", f"this submission already has {count} containers, "
                                           f"the maximum is {self.limits.max_containers}")

    def _check_bind(self, source: str) -> None:
        """A bind source in the scratch folder, or inside one of the submission's own volumes."""
        try:
            check_bind_source(source, self.scratch)
        except Refused:
            volumes = self.api.volumes(filters={"label": self.label}).get("Volumes") or []
            for volume in volumes:
                try:
                    check_bind_source(source, Path(volume["Mountpoint"]))
                    return
                except Refused:
                    continue
            raise

    def _check_mounts(self, host: dict) -> None:
        for bind in host.get("Binds") or []:
            source = bind.split(":")[0]
            if source.startswith("/"):
                self._check_bind(source)
            else:
                self._claim_volume(source)
        for mount in host.get("Mounts") or []:
            kind, source = mount.get("Type", "volume"), mount.get("Source") or ""
            if kind == "bind":
                self._check_bind(source)
            elif kind == "volume":
                if (mount.get("VolumeOptions") or {}).get("DriverConfig"):
                    raise Refused("plain-volumes", "volume driver options are not allowed")
                if source:
                    self._claim_volume(source)
            elif kind != "tmpfs":
                raise Refused("no-devices", f"mounts of type {kind!r} are not allowed")

    def _claim_volume(self, name: str) -> None:
        """A named volume a container mounts: this submission's, created labelled if new."""
        found = self._inspect(self.api.inspect_volume, name)
        if found is None:
            self.api.create_volume(name, labels={GATEKEEPER_LABEL: self.namespace})
        elif not self._labelled(found.get("Labels")):
            raise Refused("ownership", f"volume {name!r} belongs to someone else")

    def list_containers(self, request: Request, *_) -> Forward:
        keep = _json_transform(lambda items: [c for c in items if self._labelled(c.get("Labels"))])
        return Forward(request, transform=keep)

    def update_container(self, request: Request, body: bytes, ident: str) -> Forward:
        self.own_container(ident)
        apply_limits(json.loads(body or b"{}"), self.limits, updating=True)
        return Forward(request, body)

    def create_exec(self, request: Request, body: bytes, ident: str) -> Forward:
        self.own_container(ident)
        if json.loads(body or b"{}").get("Privileged"):
            raise Refused("no-privileged", "privileged exec is not allowed")
        return Forward(request, body, transform=self._remember(self._own_exec_ids))

    def container_call(self, request: Request, ident: str, action: str | None = None) -> Forward:
        with self._lock:
            known = ident in self._own_container_ids
        if request.method == "GET" and action == "/json" and not known:
            return Forward(request, transform=self._own_in_answer(ident))
        self.own_container(ident)
        return Forward(request, transform=_inspected(request))

    def exec_call(self, request: Request, ident: str, *_) -> Forward:
        with self._lock:
            known = ident in self._own_exec_ids
        found = None if known else self._inspect(self.api.exec_inspect, ident)
        if found is not None:
            self.own_container(found["ContainerID"])
        return Forward(request)

    # -- images ------------------------------------------------------------------------------

    def list_images(self, request: Request, *_) -> Forward:
        def visible(image: dict) -> bool:
            return image["Id"] in self.base_ids or self._listed_image_is_own(image)
        return Forward(request, transform=_json_transform(lambda items: [i for i in items
                                                                          if visible(i)]))

    def create_image(self, request: Request, *_) -> Forward:
        """Pull (only from an own registry) or import (stamped with the label)."""
        source = request.param("fromImage")
        if source:
            tag = request.param("tag")
            reference = source + (f"@{tag}" if tag.startswith("sha256:") else
                                  f":{tag}" if tag else "")
            self.own_registry(registry_of(reference), f"pulling {reference!r}")
            self.track(self.free_reference(reference))
            return Forward(request, after=self._guard_references(lambda: {reference}))
        named = {_named(request)} if request.param("repo") else set()
        for name in named:
            self.track(self.free_reference(name))
        changes = [*request.query, ("changes", f'LABEL {GATEKEEPER_LABEL}="{self.namespace}"')]
        return Forward(request.with_query(changes), after=self._guard_references(lambda: named))

    def load_images(self, request: Request, *_) -> Forward:
        loaded: set[str] = set()

        def note_loaded(response: Response) -> Response:
            for name in LOADED.findall(response.body.decode("utf-8", "replace")):
                self.track(name)
                loaded.add(name)
            return response
        return Forward(request, transform=note_loaded,
                       after=self._guard_references(lambda: loaded))

    def save_images(self, request: Request, *_) -> Forward:
        for name in request.params("names"):
            self.readable_image(name)
        return Forward(request)

    def read_image(self, request: Request, ident: str, *_) -> Forward:
        self.readable_image(ident)
        return Forward(request, transform=_inspected(request))

    def tag_image(self, request: Request, ident: str) -> Forward:
        self.readable_image(ident)
        self.track(self.free_reference(_named(request)))
        return Forward(request)

    def push_image(self, request: Request, ident: str) -> Forward:
        self.readable_image(ident)
        self.own_registry(registry_of(ident), f"pushing {ident!r}", in_stream=True)
        return Forward(request)

    def remove_image(self, request: Request, ident: str) -> Forward:
        name = normalise(ident)
        with self._lock:
            tracked = name in self.references
        if not tracked:
            self._writable_image(self._image(ident), f"image {ident!r}")
        return Forward(request, hold=removing_images)

    def build(self, request: Request, *_) -> Forward:
        if request.param("networkmode") == "host":
            raise Refused("no-host-namespaces", "building with the host's network is not allowed")
        if request.param("remote"):
            raise Refused("own-registry-only", "building from a remote context is not allowed")
        for tag in request.params("t"):
            self.track(self.free_reference(tag))
        # No label stamped: the builder would add a LABEL step to the image's history, which
        # exercises count. Ownership comes from the ids in the build's output instead.
        # Intermediate containers carry no label: never let a build leave them behind.
        query = [(k, v) for k, v in request.query if k not in ("rm", "forcerm")]
        query += [("rm", "1"), ("forcerm", "1")]
        if not request.param("memory"):
            query.append(("memory", str(self.limits.memory)))
        tags = set(request.params("t"))
        hold = BuildHold()
        return Forward(request.with_query(query), after=self._guard_references(lambda: tags),
                       observe=self._follow_build(hold), hold=lambda: hold)

    def _follow_build(self, hold: BuildHold) -> Callable[[bytes], None]:
        """Read the build's output as it passes: claim every image id it prints (its steps'
        images and the final one), and let go of the build-cache lock while a step's container
        exists (``BuildHold``)."""
        tail = b""

        def observe(chunk: bytes) -> None:
            nonlocal tail
            seen = tail + chunk
            tail = seen[-64:]  # an id or a marker split across two chunks is found next time
            found = BUILT.findall(seen)
            base = {i.removeprefix("sha256:")[:12] for i in self.base_ids}
            with self._lock:  # the FROM step prints the course image's id: never claim it
                self.image_ids.update(short.decode() for short in found
                                      if short.decode() not in base)
            markers = STEP_CONTAINER.findall(seen)
            if markers and markers[-1] == b"Running in":
                hold.pause()
            elif markers:
                hold.resume()
        return observe

    def commit(self, request: Request, *_) -> Forward:
        self.own_container(request.param("container"))
        if request.param("repo"):
            self.track(self.free_reference(_named(request)))
        changes = [*request.query, ("changes", f'LABEL {GATEKEEPER_LABEL}="{self.namespace}"')]
        return Forward(request.with_query(changes))

    def _listed_image_is_own(self, image: dict) -> bool:
        return self._own_image({"Id": image["Id"], "RepoTags": image.get("RepoTags"),
                                "Config": {"Labels": image.get("Labels")}})

    def _guard_references(self, names: Callable[[], set[str]]) -> Callable[[], None]:
        """After an operation that may rename images: put back names it took from others.

        A name that pointed at a course image or at someone else's image before the operation
        is given back to that image, even if the operation announced it as loaded. Only the
        names the operation itself could set count (``names()``, asked afterwards): meanwhile
        other submissions move their own names, which is none of this one's business.
        """
        taken = {tag: image["Id"] for image in self.api.images()
                 if image["Id"] in self.base_ids or not self._listed_image_is_own(image)
                 for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"}

        def restore() -> None:
            wanted = {normalise(name) for name in names()}
            for image in self.api.images():
                for tag in image.get("RepoTags") or []:
                    old = taken.get(tag)
                    if old and old != image["Id"] and normalise(tag) in wanted:
                        repository, name = split_reference(tag)
                        self.api.tag(old, repository, name, force=True)
                        with self._lock:
                            self.references.discard(normalise(tag))

        return restore

    # -- volumes and networks ----------------------------------------------------------------

    def _mounted_by_own_containers(self) -> set[str]:
        """Volumes this submission's containers mount: anonymous ones carry no label."""
        return {mount["Name"] for container in self.api.containers(all=True, filters={
            "label": self.label}) for mount in container.get("Mounts") or [] if mount.get("Name")}

    def list_volumes(self, request: Request, *_) -> Forward:
        def keep(listing: dict) -> dict:
            mounted = self._mounted_by_own_containers()
            listing["Volumes"] = [v for v in listing.get("Volumes") or []
                                  if self._labelled(v.get("Labels")) or v["Name"] in mounted]
            return listing
        return Forward(request, transform=_json_transform(keep))

    def create_volume(self, request: Request, body: bytes, *_) -> Forward:
        spec = json.loads(body or b"{}")
        options = spec.get("DriverOpts") or {}
        in_memory = options.get("type") == "tmpfs" and options.get("device") == "tmpfs" \
            and "bind" not in options.get("o", "")
        if (options and not in_memory) or spec.get("Driver") not in (None, "", "local"):
            raise Refused("plain-volumes", "volume drivers and driver options other than a "
                                           "tmpfs (they can mount host paths) are not allowed")
        spec["Labels"] = {**(spec.get("Labels") or {}), GATEKEEPER_LABEL: self.namespace}
        return Forward(request, json.dumps(spec).encode())

    def volume_call(self, request: Request, name: str) -> Forward:
        found = self._inspect(self.api.inspect_volume, name)
        if found is not None and not self._labelled(found.get("Labels")) \
                and name not in self._mounted_by_own_containers():
            raise Refused("ownership", f"volume {name!r} belongs to someone else")
        return Forward(request, transform=_inspected(request))

    def own_network(self, ident: str, writable: bool = False) -> None:
        found = self._inspect(self.api.inspect_network, ident)
        if found is None or self._labelled(found.get("Labels")):
            return
        if found["Name"] in PREDEFINED_NETWORKS and not writable:
            return
        raise Refused("ownership", f"network {ident!r} belongs to someone else"
                      if found["Name"] not in PREDEFINED_NETWORKS
                      else f"network {ident!r} is the daemon's own")

    def list_networks(self, request: Request, *_) -> Forward:
        keep = _json_transform(lambda items: [n for n in items if self._labelled(n.get("Labels"))
                                              or n["Name"] in PREDEFINED_NETWORKS])
        return Forward(request, transform=keep)

    def create_network(self, request: Request, body: bytes, *_) -> Forward:
        spec = json.loads(body or b"{}")
        if spec.get("Driver") not in (None, "", "bridge"):
            raise Refused("plain-networks", f"network driver {spec['Driver']!r} is not allowed")
        spec["Labels"] = {**(spec.get("Labels") or {}), GATEKEEPER_LABEL: self.namespace}
        return Forward(request, json.dumps(spec).encode())

    def connect_network(self, request: Request, body: bytes, ident: str, _action: str) -> Forward:
        found = self._inspect(self.api.inspect_network, ident)
        if found is not None and found["Name"] == "host":
            raise Refused("no-host-namespaces", "the host's network is not allowed")
        self.own_network(ident)
        container = json.loads(body or b"{}").get("Container")
        if container:
            self.own_container(container)
        return Forward(request, body)

    def network_call(self, request: Request, ident: str) -> Forward:
        self.own_network(ident, writable=request.method == "DELETE")
        return Forward(request, transform=_inspected(request))

    # -- daemon-wide views, scoped ------------------------------------------------------------

    def prune(self, request: Request, *_) -> Answer:
        """Prune within this submission's label, waiting out another submission's prune.

        The daemon runs one prune of a kind at a time and answers a second with 409 "a prune
        operation is already running". Alone on the daemon a submission never meets that, so
        the gatekeeper retries for a while instead of passing it on.
        """
        scoped = _with_label_filter(request, self.label)
        for attempt in range(PRUNE_ATTEMPTS):
            response = self.api._post(self.api._url(scoped.path), params=scoped.query)
            if response.status_code != 409 or "already running" not in response.text:
                break
            time.sleep(0.1 * (attempt + 1))
        return Answer(Response(response.status_code, response.reason or "",
                               [("Content-Type", "application/json")], response.content))

    def prune_images(self, request: Request, *_) -> Answer:
        """Prune only this submission's unused images, as the daemon's prune would.

        Built images carry no ownership label, so a label-scoped prune would miss them: the
        gatekeeper chooses the images and removes them one by one, newest first.
        """
        try:
            filters = json.loads(request.param("filters") or "{}")
            choose = prune_filter(filters)
        except (json.JSONDecodeError, ValueError) as error:
            raise Refused("bad-filters", f"cannot read the prune filters: {error}", 400) from None
        dangling = filter_flag(filters.get("dangling"), default=True)
        used = {container["ImageID"] for container in self.api.containers(all=True)}
        deleted, space = [], 0
        images = self.api.images(filters={"dangling": True} if dangling else None)
        chosen = [image for image in sorted(images, key=lambda i: i.get("Created", 0), reverse=True)
                  if image["Id"] not in used and image["Id"] not in self.base_ids
                  and choose(image) and self._listed_image_is_own(image)]
        with removing_images() if chosen else nullcontext():
            for image in chosen:
                try:
                    deleted += self.api.remove_image(image["Id"], force=not dangling)
                    space += image.get("Size", 0)
                except APIError:
                    continue  # a child image or a container still needs it
        return Answer(json_response(200, {"ImagesDeleted": deleted or None,
                                          "SpaceReclaimed": space}))

    def events(self, request: Request, *_) -> Forward:
        return Forward(_with_label_filter(request, self.label))

    def disk_usage(self, request: Request, *_) -> Forward:
        def keep(usage: dict) -> dict:
            usage["Containers"] = [c for c in usage.get("Containers") or []
                                   if self._labelled(c.get("Labels"))]
            usage["Volumes"] = [v for v in usage.get("Volumes") or []
                                if self._labelled(v.get("Labels"))]
            usage["Images"] = [i for i in usage.get("Images") or [] if i["Id"] in self.base_ids
                               or self._labelled(i.get("Labels"))]
            usage["BuildCache"] = []
            return usage
        return Forward(request, transform=_json_transform(keep))

    def login(self, request: Request, body: bytes, *_) -> Forward:
        address = json.loads(body or b"{}").get("serveraddress") or ""
        host = urlsplit(address if "//" in address else f"//{address}").netloc
        self.own_registry(host, f"logging in to {address!r}")
        return Forward(request, body)
