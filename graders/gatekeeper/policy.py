"""What one submission may do on the daemon: every endpoint it can reach, and on what terms.

Deny by default: an endpoint not in ``routes`` is refused with its name. Each allowed endpoint
names the query parameters and body fields it accepts (``schemas``); its handler judges the
decoded call and returns what to forward, rewritten where a rule needs it. Allowed endpoints
stamp the submission's label on what they create, see only the submission's own objects (and
the course's base images, read-only), and refuse host-level powers with a message naming the
rule. Images and builds have their own handlers (``image_rules``, ``build_rules``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
from docker.errors import APIError

from ..settings import GATEKEEPER_LABEL
from ..sweep import LIST_ATTEMPTS, list_images
from . import schemas as E
from .binds import BindPins
from .calls import Call
from .cgroups import SubmissionCgroup
from .ownership import PREDEFINED_NETWORKS, Ownership
from .rules import (
    HOST_POWERS,
    Limits,
    Refused,
    apply_limits,
    check_privileges,
    check_resources,
    filter_flag,
    prune_filter,
)
from .wire import Response, json_response

LOCAL_HOSTS = ("127.0.0.1", "localhost")
#: How often a prune is tried while another submission's prune of the same kind runs (~20 s).
PRUNE_ATTEMPTS = 20
#: The label Engine 23 and later give a volume made for a container (an anonymous one).
ANONYMOUS_VOLUME = "com.docker.volume.anonymous"
#: How often the submission's disk use is measured.
DISK_CHECK_SECONDS = 5.0
#: Bridge options a network may set: they change only the network itself.
NETWORK_OPTIONS = ("com.docker.network.bridge.enable_icc",
                   "com.docker.network.bridge.enable_ip_masquerade",
                   "com.docker.network.bridge.host_binding_ipv4",
                   "com.docker.network.driver.mtu")


@dataclass
class Forward:
    """Pass the call on; optionally rewrite the answer, watch it stream by, or act after it."""

    call: Call
    transform: Callable[[Response], Response] | None = None
    #: Called after the exchange, answered or not, with the daemon's status (None if none).
    after: Callable[[int | None], None] | None = None
    #: Sees the answer's body as it streams by; may return work to do (in a thread) before
    #: that part of the answer is passed on.
    observe: Callable[[bytes], Callable[[], None] | None] | None = None
    #: A lock held from sending the request until its answer has been passed on.
    hold: Callable[[], AbstractContextManager] | None = None


@dataclass
class Answer:
    """Answer the request here: the gatekeeper did the work itself."""

    response: Response


def without_own_label(found):
    """The gatekeeper's label taken out of every ``Labels``: exercises see only their own."""
    if isinstance(found, list):
        return [without_own_label(item) for item in found]
    if isinstance(found, dict):
        labels = found.get("Labels")
        if isinstance(labels, dict):
            labels.pop(GATEKEEPER_LABEL, None)
        return {key: without_own_label(value) for key, value in found.items()}
    return found


def json_transform(edit: Callable = lambda found: found) -> Callable[[Response], Response]:
    """Rewrite a JSON answer with ``edit``, then hide the gatekeeper's label in it."""
    def transform(response: Response) -> Response:
        if response.status == 200 and response.body.strip():
            response.body = json.dumps(without_own_label(edit(json.loads(response.body))))\
                .encode()
        return response
    return transform


def tripped_over_a_removal(response: Response) -> bool:
    """Whether a listing failed because an object it was reading was removed meanwhile.

    Engine 26.1 with the containerd image store answers 404 (*"content digest ...: not
    found"*) when an image goes, and disk usage answers 500 (*"failed to retrieve container
    list: rw layer snapshot not found for container ..."*) when a container goes.
    """
    return response.status == 404 or (response.status == 500
                                      and b"not found" in response.body.lower())


def asked_again_on_race(api, call: Call, transform: Callable[[Response], Response]
                        ) -> Callable[[Response], Response]:
    """``transform``, after asking the daemon again (the same GET) while the answer trips over
    an object another submission removed (see ``tripped_over_a_removal`` and
    sweep.list_images), which is no doing of this submission's."""
    def again(response: Response) -> Response:
        for attempt in range(LIST_ATTEMPTS - 1):
            if not tripped_over_a_removal(response):
                break
            time.sleep(0.05 * (attempt + 1))
            answer = api.get(api.base_url + call.target, timeout=60)
            response.status, response.reason = answer.status_code, answer.reason
            response.body = answer.content
        return transform(response)
    return again


def with_label_filter(call: Call, label: str) -> Call:
    """Add ``label=<namespace>`` to a list, prune or events filter, keeping the caller's own."""
    filters = {key: list(terms) for key, terms in (call.param("filters") or {}).items()}
    filters["label"] = [*filters.get("label", []), label]
    return call.with_query(filters=filters)


def api_version(text: str) -> tuple[int, ...]:
    """``/v1.45`` or ``1.45`` as (1, 45), to compare API versions."""
    return tuple(int(part) for part in text.lstrip("/v").split("."))


def folder_size(folder: Path) -> int:
    """Bytes of the files under a volume's folder on this host (0 where it is not readable)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


class DiskWatch:
    """The bytes one submission holds on the daemon, measured every few seconds in a thread
    of its own (with a client of its own), so no request waits for the daemon to count."""

    def __init__(self, owner: Ownership, base_url: str) -> None:
        self.owner = owner
        self.used = 0
        self._api = docker.APIClient(base_url=base_url, version="auto", timeout=60)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"disk-{owner.namespace}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(DISK_CHECK_SECONDS):
            try:
                self.used = self.measure()
            except docker.errors.DockerException:
                continue

    def measure(self) -> int:
        api, label = self._api, self.owner.label
        images = {image["Id"]: image.get("Size", 0) for image in list_images(api)
                  if image["Id"] not in self.owner.base_ids
                  and self.owner.listed_image_is_own(image)}
        containers = api.containers(all=True, size=True, filters={"label": label})
        volumes = api.volumes(filters={"label": label}).get("Volumes") or []
        return (sum(images.values()) + sum(c.get("SizeRw") or 0 for c in containers)
                + sum(folder_size(Path(v["Mountpoint"])) for v in volumes if v.get("Mountpoint")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._api.close()


class Policy:
    """The rules for one submission, identified by its namespace."""

    def __init__(self, namespace: str, scratch: Path, client: docker.DockerClient,
                 limits: Limits, cgroup: SubmissionCgroup | None = None,
                 upstream: str = "unix:///var/run/docker.sock") -> None:
        from .build_rules import BuildRules
        from .image_rules import ImageRules

        self.namespace = namespace
        self.scratch = scratch
        self.api = client.api
        self.limits = limits
        self.cgroup = cgroup
        self.owner = Ownership(namespace, client)
        self.label = self.owner.label
        self.pins = BindPins()
        self._creating = {"containers": 0, "volumes": 0, "networks": 0}
        self._made = {"containers": 0, "volumes": 0, "networks": 0}
        self._bound: dict[str, list[str]] = {}
        self._cap_lock = threading.Lock()
        self.disk = DiskWatch(self.owner, upstream)
        images = ImageRules(self)
        builds = BuildRules(self, images)
        self.images = images
        self.routes: list[tuple[set[str], re.Pattern, Callable, E.Endpoint | None]] = [
            ({"GET", "HEAD"}, re.compile(r"/_ping|/version|/info"), self.allow, E.PING),
            ({"POST"}, re.compile(r"/containers/create"), self.create_container,
             E.CREATE_CONTAINER),
            ({"GET"}, re.compile(r"/containers/json"), self.list_containers, E.LIST_CONTAINERS),
            ({"POST"}, re.compile(r"/containers/prune"), self.prune_containers, E.PRUNE),
            ({"POST"}, re.compile(r"/containers/([^/]+)/update"), self.update_container,
             E.UPDATE_CONTAINER),
            ({"POST"}, re.compile(r"/containers/([^/]+)/exec"), self.create_exec, E.CREATE_EXEC),
            ({"GET"}, re.compile(r"/containers/([^/]+)/attach/ws"), self.refuse_endpoint, None),
            ({"GET", "HEAD", "POST", "PUT", "DELETE"},
             re.compile(r"/containers/(.+?)(/(?:json|logs|start|stop|restart|kill|wait|pause|"
                        r"unpause|top|changes|export|stats|resize|attach|archive|rename))?"),
             self.container_call, None),
            ({"POST"}, re.compile(r"/exec/([^/]+)/start"), self.exec_call, E.START_EXEC),
            ({"POST"}, re.compile(r"/exec/([^/]+)/resize"), self.exec_call, E.RESIZE),
            ({"GET"}, re.compile(r"/exec/([^/]+)/json"), self.exec_call, E.PING),
            ({"GET"}, re.compile(r"/images/json"), images.list, E.LIST_IMAGES),
            ({"POST"}, re.compile(r"/images/create"), images.create, E.CREATE_IMAGE),
            ({"POST"}, re.compile(r"/images/load"), images.load, E.LOAD_IMAGES),
            ({"GET"}, re.compile(r"/images/get"), images.save, E.SAVE_IMAGES),
            ({"POST"}, re.compile(r"/images/prune"), images.prune, E.PRUNE),
            ({"POST"}, re.compile(r"/images/(.+)/tag"), images.tag, E.TAG_IMAGE),
            ({"POST"}, re.compile(r"/images/(.+)/push"), images.push, E.PUSH_IMAGE),
            ({"GET"}, re.compile(r"/images/(.+)/(?:json|history|get)"), images.read,
             E.READ_IMAGE),
            ({"DELETE"}, re.compile(r"/images/(.+)"), images.remove, E.REMOVE_IMAGE),
            ({"POST"}, re.compile(r"/build"), builds.build, E.BUILD),
            ({"POST"}, re.compile(r"/commit"), images.commit, E.COMMIT),
            ({"GET"}, re.compile(r"/volumes"), self.list_volumes, E.LIST_VOLUMES),
            ({"POST"}, re.compile(r"/volumes/create"), self.create_volume, E.CREATE_VOLUME),
            ({"POST"}, re.compile(r"/volumes/prune"), self.prune_volumes, E.PRUNE),
            ({"GET", "DELETE"}, re.compile(r"/volumes/([^/]+)"), self.volume_call, E.VOLUME),
            ({"GET"}, re.compile(r"/networks"), self.list_networks, E.LIST_NETWORKS),
            ({"POST"}, re.compile(r"/networks/create"), self.create_network, E.CREATE_NETWORK),
            ({"POST"}, re.compile(r"/networks/prune"), self.prune, E.PRUNE),
            ({"POST"}, re.compile(r"/networks/([^/]+)/connect"), self.connect_network,
             E.CONNECT_NETWORK),
            ({"POST"}, re.compile(r"/networks/([^/]+)/disconnect"), self.connect_network,
             E.DISCONNECT_NETWORK),
            ({"GET", "DELETE"}, re.compile(r"/networks/([^/]+)"), self.network_call, E.NETWORK),
            ({"GET"}, re.compile(r"/events"), self.events, E.EVENTS),
            ({"GET"}, re.compile(r"/system/df"), self.disk_usage, E.DISK_USAGE),
            ({"POST"}, re.compile(r"/auth"), self.login, E.LOGIN),
        ]

    # -- routing -----------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[Callable, tuple[str, ...], E.Endpoint]:
        """The handler for a request, the path's captured names, and what the endpoint reads."""
        for methods, pattern, handler, endpoint in self.routes:
            match = pattern.fullmatch(path)
            if match and method in methods:
                names = tuple(group for group in match.groups() if group is not None)
                if endpoint is None:
                    action = names[1] if len(names) > 1 else ""
                    endpoint = E.CONTAINER_ACTIONS.get(action, E.PING)
                return handler, names, endpoint
        return self.refuse_endpoint, (), E.PING

    def refuse_endpoint(self, call: Call, *_) -> Forward:
        raise Refused("endpoint-not-allowed",
                      f"{call.method} {call.path} is not available to a submission "
                      f"(daemon-wide, swarm, plugin and unlisted endpoints are closed)")

    def allow(self, call: Call, *_) -> Forward:
        return Forward(call)

    # -- caps --------------------------------------------------------------------------------

    def reserve(self, kind: str, count: Callable[[], int], cap: int) -> Callable[[int | None],
                                                                                 None]:
        """Take one of ``cap`` places for a new object, atomically with concurrent creates.

        While fewer were ever made than the cap allows, the daemon cannot hold more; past that
        the daemon's count, plus creates still in flight, decides. The returned function gives
        the place back once the daemon answered (kept if it created the object).
        """
        with self._cap_lock:
            in_flight = self._creating[kind]
            if self._made[kind] + in_flight >= cap:
                existing = count()
                if existing + in_flight >= cap:
                    raise Refused(f"{kind[:-1]}-cap", f"this submission already has "
                                  f"{existing} {kind}, the maximum is {cap}")
            self._creating[kind] += 1

        def release(status: int | None) -> None:
            with self._cap_lock:
                self._creating[kind] -= 1
                if status is not None and status < 300:
                    self._made[kind] += 1
        return release

    def check_disk(self) -> None:
        """Before anything that adds to the daemon's disk: the submission's images, its
        containers' writable layers and its volumes stay under ``max_disk`` bytes (as last
        measured by ``disk``, in the background: sizes are costly for the daemon)."""
        used = self.disk.used
        if used >= self.limits.max_disk:
            raise Refused("disk-cap", f"this submission's images, containers and volumes hold "
                                      f"{used >> 20} MiB, the maximum is "
                                      f"{self.limits.max_disk >> 20} MiB")

    def _count(self, kind: str) -> Callable[[], int]:
        def count() -> int:
            if kind == "containers":
                return len(self.api.containers(all=True, filters={"label": self.label}))
            if kind == "volumes":
                return len(self.api.volumes(filters={"label": self.label}).get("Volumes") or [])
            return len(self.api.networks(filters={"label": self.label}))
        return count

    # -- containers --------------------------------------------------------------------------

    def create_container(self, call: Call, *_) -> Forward:
        spec = call.body
        host = spec.setdefault("HostConfig", {})
        check_privileges(host)
        for mode in ("NetworkMode", "PidMode", "IpcMode"):
            value = host.get(mode) or ""
            if value.startswith("container:"):
                own = self.owner.container(value.removeprefix("container:"))
                if own:
                    host[mode] = f"container:{own}"
        network = host.get("NetworkMode") or ""
        if network and network not in PREDEFINED_NETWORKS and ":" not in network:
            self.owner.network(network)
        endpoints = (spec.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        for name, endpoint in endpoints.items():
            if name not in PREDEFINED_NETWORKS:
                self.owner.network(name)
            if endpoint and (endpoint.get("DriverOpts") or endpoint.get("IPAMConfig")):
                raise Refused("plain-networks", "endpoint driver options and fixed addresses "
                                                "are not allowed")
            for link in (endpoint or {}).get("Links") or []:
                self.owner.container(link.split(":")[0].lstrip("/"))
        host["VolumesFrom"] = [self._own_volumes_from(source)
                               for source in host.get("VolumesFrom") or []] or None
        for link in host.get("Links") or []:
            self.owner.container(link.split(":")[0].lstrip("/"))
        bound = self._check_mounts(host)
        if spec.get("Image"):
            self.owner.readable_image(spec["Image"])
        spec["Labels"] = {**(spec.get("Labels") or {}), GATEKEEPER_LABEL: self.namespace}
        spec["HostConfig"] = {k: v for k, v in apply_limits(host, self.limits).items()
                              if v is not None}
        if self.cgroup is not None:
            spec["HostConfig"]["CgroupParent"] = self.cgroup.parent
        self.check_disk()
        release = self.reserve("containers", self._count("containers"),
                               self.limits.max_containers)

        def remember(response: Response) -> Response:
            if response.status == 201 and response.body.strip():
                ident = json.loads(response.body)["Id"]
                with self.owner.lock:
                    self.owner.container_ids.add(ident)
                    if bound:
                        self._bound[ident] = bound
            return response
        return Forward(call, transform=remember, after=release)

    def _own_volumes_from(self, source: str) -> str:
        name, sep, mode = source.partition(":")
        own = self.owner.container(name)
        return f"{own or name}{sep}{mode}"

    def _roots(self) -> list[Path]:
        """Where bind sources may come from: scratch, and the submission's own volumes."""
        volumes = self.api.volumes(filters={"label": self.label}).get("Volumes") or []
        return [self.scratch, *(Path(v["Mountpoint"]) for v in volumes if v.get("Mountpoint"))]

    def _check_mounts(self, host: dict) -> list[str]:
        """Pin every bind source (see ``binds``), claim named volumes; the paths to re-check."""
        sources: list[str] = []
        binds = []
        for bind in host.get("Binds") or []:
            source, sep, rest = bind.partition(":")
            if not sep:  # a container path alone: an anonymous volume made for the container
                binds.append(bind)
                continue
            options = rest.split(":")[1].split(",") if rest.count(":") else []
            if {"z", "Z"} & set(options):
                raise Refused("bind-mounts-in-scratch", "relabelling a host folder (:z, :Z) "
                                                        "is not allowed")
            if source.startswith("/"):
                source = self.pins.pin(source, self._roots(), create=True)
                sources.append(source)
            else:
                self._claim_volume(source)
            binds.append(f"{source}{sep}{rest}")
        if binds:
            host["Binds"] = binds
        for mount in host.get("Mounts") or []:
            kind, source = mount.get("Type", "volume"), mount.get("Source") or ""
            if kind == "bind":
                propagation = (mount.get("BindOptions") or {}).get("Propagation") or ""
                if propagation not in ("", "private", "rprivate"):
                    raise Refused("bind-mounts-in-scratch", f"bind propagation {propagation!r} "
                                                            f"is not allowed")
                mount["Source"] = self.pins.pin(source, self._roots(), create=False)
                sources.append(mount["Source"])
            elif kind == "volume":
                options = mount.get("VolumeOptions") or {}
                if options.get("DriverConfig"):
                    raise Refused("plain-volumes", "volume driver options are not allowed")
                if source:
                    self._claim_volume(source)
            elif kind != "tmpfs":
                raise Refused("no-devices", f"mounts of type {kind!r} are not allowed")
        return sources

    def _claim_volume(self, name: str) -> None:
        """A named volume a container mounts: this submission's, created labelled if new."""
        found = self.owner.inspect(self.api.inspect_volume, name)
        if found is None:
            release = self.reserve("volumes", self._count("volumes"), self.limits.max_volumes)
            try:
                self.api.create_volume(name, labels={GATEKEEPER_LABEL: self.namespace})
            finally:
                release(201)
        elif not self.owner.labelled(found.get("Labels")):
            raise Refused("ownership", f"volume {name!r} belongs to someone else")

    def _check_bound_sources(self, ident: str) -> None:
        """Before a start: the container's bind sources are still what was checked."""
        with self.owner.lock:
            sources = list(self._bound.get(ident, ()))
        for source in sources:
            if not self.pins.owns(source):
                self.pins.pin(source, self._roots(), create=False)

    def list_containers(self, call: Call, *_) -> Forward:
        keep = json_transform(lambda items: [self._shown(c) for c in items
                                             if self.owner.labelled(c.get("Labels"))])
        return Forward(call, transform=keep)

    def _shown(self, found: dict) -> dict:
        """A container as the submission sees it: its own paths and no cgroup of ours."""
        self.owner.note_mounts(found)
        originals = self.pins.originals()
        if not originals and self.cgroup is None:
            return found
        text = json.dumps(found)
        for pinned, source in originals.items():
            # Pins are numbered: the one called 1 must not match inside the one called 13.
            shown = json.dumps(source)[1:-1]
            text = re.sub(re.escape(json.dumps(pinned)[1:-1]) + r"(?![0-9])", lambda _, s=shown: s,
                          text)
        found = json.loads(text)
        host = found.get("HostConfig")
        if isinstance(host, dict) and self.cgroup is not None and "CgroupParent" in host:
            host["CgroupParent"] = ""
        return found

    def update_container(self, call: Call, ident: str) -> Forward:
        own = self.owner.container(ident)
        update = call.body
        if bool(update.get("CpuQuota")) != bool(update.get("CpuPeriod")):
            # The daemon keeps the other of the two, so a new period under the quota set at
            # creation is a limit of its own: check, and send, the pair the daemon will hold.
            held = self.api.inspect_container(own or ident)["HostConfig"]
            for name in ("CpuQuota", "CpuPeriod"):
                update[name] = update.get(name) or held.get(name) or 0
        check_resources(update, self.limits, updating=True)
        for name in HOST_POWERS:
            if name in update and update[name] not in (None, False, 0, "", [], {}):
                raise Refused(HOST_POWERS[name][0], f"an update may not set {name}")
        return Forward(self._by_id(call, ident, own))

    def create_exec(self, call: Call, ident: str) -> Forward:
        own = self.owner.container(ident)
        if call.body.get("Privileged"):
            raise Refused("no-privileged", "privileged exec is not allowed")

        def remember(response: Response) -> Response:
            if response.status == 201 and response.body.strip():
                with self.owner.lock:
                    self.owner.exec_ids.add(json.loads(response.body)["Id"])
            return response
        return Forward(self._by_id(call, ident, own), transform=remember)

    @staticmethod
    def _by_id(call: Call, ident: str, own: str | None) -> Call:
        """The call addressed to the full id that was checked when it named an id prefix: the
        daemon prefers a name to a prefix, and anyone may create a container of that name."""
        if own is None or own == ident or not own.startswith(ident):
            return call
        prefix = call.path.split(ident, 1)[0]
        return call.with_path(prefix + own + call.path[len(prefix) + len(ident):])

    def container_call(self, call: Call, ident: str, action: str | None = None) -> Forward:
        with self.owner.lock:
            known = ident in self.owner.container_ids
        if call.method == "GET" and action == "/json" and not known:
            return Forward(call, transform=self._own_in_answer(ident))
        own = self.owner.container(ident)
        if action in ("/start", "/restart") and own:
            self._check_bound_sources(own)
        if call.method == "DELETE" and action is None and own and not call.param("v"):
            self._note_mounts_of(own)
        inspected = call.method == "GET" and action == "/json"
        return Forward(self._by_id(call, ident, own),
                       transform=self._inspected_container if inspected else None)

    def _note_mounts_of(self, own: str) -> None:
        """Before a removal that keeps the container's volumes: which they are, unless an
        answer already showed them (docker-py's ``run`` inspects every container it starts)."""
        with self.owner.lock:
            seen = own in self.owner.mounts_seen
        if not seen:
            self.owner.note_mounts(self.owner.inspect(self.api.inspect_container, own) or {})

    def _inspected_container(self, response: Response) -> Response:
        return json_transform(self._shown)(response)

    def _own_in_answer(self, ident: str) -> Callable[[Response], Response]:
        """Check an inspected container's ownership in the daemon's answer itself: a container
        the exercises look up by name is inspected once, and refused if it is someone else's."""
        def transform(response: Response) -> Response:
            if response.status != 200 or not response.body.strip():
                return response
            self.owner.check_container(json.loads(response.body), ident)
            return self._inspected_container(response)
        return transform

    def exec_call(self, call: Call, ident: str, *_) -> Forward:
        with self.owner.lock:
            known = ident in self.owner.exec_ids
        found = None if known else self.owner.inspect(self.api.exec_inspect, ident)
        if found is not None:
            self.owner.container(found["ContainerID"])
            with self.owner.lock:
                self.owner.exec_ids.add(found["ID"])
            call = Policy._by_id(call, ident, found["ID"])
        return Forward(call)

    # -- volumes and networks ----------------------------------------------------------------

    def list_volumes(self, call: Call, *_) -> Forward:
        def keep(listing: dict) -> dict:
            mounted = self.owner.mounted_by_own_containers() | self.owner.volume_names
            listing["Volumes"] = [v for v in listing.get("Volumes") or []
                                  if self.owner.labelled(v.get("Labels")) or v["Name"] in mounted]
            return listing
        return Forward(call, transform=json_transform(keep))

    def create_volume(self, call: Call, *_) -> Forward:
        spec = call.body
        options = spec.get("DriverOpts") or {}
        in_memory = options.get("type") == "tmpfs" and options.get("device") == "tmpfs" \
            and "bind" not in options.get("o", "")
        if (options and not in_memory) or spec.get("Driver") not in (None, "", "local"):
            raise Refused("plain-volumes", "volume drivers and driver options other than a "
                                           "tmpfs (they can mount host paths) are not allowed")
        if spec.get("Name"):
            self.owner.volume(spec["Name"])
        spec["Labels"] = {**(spec.get("Labels") or {}), GATEKEEPER_LABEL: self.namespace}
        release = self.reserve("volumes", self._count("volumes"), self.limits.max_volumes)
        return Forward(call, after=release)

    def volume_call(self, call: Call, name: str) -> Forward:
        self.owner.volume(name)
        return Forward(call, transform=json_transform() if call.method == "GET" else None)

    def list_networks(self, call: Call, *_) -> Forward:
        keep = json_transform(lambda items: [n for n in items
                                             if self.owner.labelled(n.get("Labels"))
                                             or n["Name"] in PREDEFINED_NETWORKS])
        return Forward(call, transform=keep)

    def create_network(self, call: Call, *_) -> Forward:
        spec = call.body
        if spec.get("Driver") not in (None, "", "bridge"):
            raise Refused("plain-networks", f"network driver {spec['Driver']!r} is not allowed")
        unknown = set(spec.get("Options") or {}) - set(NETWORK_OPTIONS)
        if unknown:
            raise Refused("plain-networks", f"network option(s) {', '.join(sorted(unknown))} "
                                            f"are not allowed")
        ipam = spec.get("IPAM") or {}
        if ipam.get("Config") or ipam.get("Options") or ipam.get("Driver") not in (
                None, "", "default"):
            raise Refused("plain-networks", "choosing subnets or IPAM drivers is not allowed "
                                            "(a subnet could take the grading host's routes)")
        for name in ("Ingress", "ConfigOnly", "ConfigFrom", "EnableIPv6"):
            if spec.get(name):
                raise Refused("plain-networks", f"{name} is not allowed")
        if spec.get("Scope") not in (None, "", "local"):
            raise Refused("plain-networks", "only local networks are allowed")
        spec["Labels"] = {**(spec.get("Labels") or {}), GATEKEEPER_LABEL: self.namespace}
        release = self.reserve("networks", self._count("networks"), self.limits.max_networks)
        return Forward(call, after=release)

    def connect_network(self, call: Call, ident: str) -> Forward:
        found = self.owner.inspect(self.api.inspect_network, ident)
        if found is not None and found["Name"] == "host":
            raise Refused("no-host-namespaces", "the host's network is not allowed")
        reference = self.owner.network(ident)
        body = call.body
        if body.get("Container"):
            body["Container"] = self.owner.container(body["Container"]) or body["Container"]
        endpoint = body.get("EndpointConfig") or {}
        if endpoint.get("DriverOpts") or endpoint.get("IPAMConfig"):
            raise Refused("plain-networks", "endpoint driver options and fixed addresses are "
                                            "not allowed")
        for link in endpoint.get("Links") or []:
            self.owner.container(link.split(":")[0].lstrip("/"))
        return Forward(self._by_id(call, ident, reference))

    def network_call(self, call: Call, ident: str) -> Forward:
        reference = self.owner.network(ident, writable=call.method == "DELETE")
        return Forward(self._by_id(call, ident, reference),
                       transform=json_transform() if call.method == "GET" else None)

    # -- daemon-wide views, scoped ------------------------------------------------------------

    def prune(self, call: Call, *_) -> Answer:
        """Prune within this submission's label, waiting out another submission's prune.

        The daemon runs one prune of a kind at a time and answers a second with 409 "a prune
        operation is already running". Alone on the daemon a submission never meets that, so
        the gatekeeper retries for a while instead of passing it on.
        """
        scoped = with_label_filter(call, self.label)
        for attempt in range(PRUNE_ATTEMPTS):
            response = self.api._post(self.api._url(scoped.path),
                                      params=scoped.endpoint.query.encode(scoped.query))
            if response.status_code != 409 or "already running" not in response.text:
                break
            time.sleep(0.1 * (attempt + 1))
        return Answer(Response(response.status_code, response.reason or "",
                               [("Content-Type", "application/json")], response.content))

    def prune_containers(self, call: Call, *_) -> Answer:
        """A prune keeps the removed containers' volumes: note which they are first."""
        for container in self.api.containers(all=True, filters={"label": self.label}):
            self.owner.note_mounts(container)
        return self.prune(call)

    def prune_volumes(self, call: Call, *_) -> Answer:
        """Prune this submission's unused volumes, as the daemon in front of it would.

        Anonymous volumes carry no ownership label, so a label-scoped prune would miss them: the
        gatekeeper chooses the volumes and removes them one by one. Since API 1.42 (Engine 23)
        a prune takes only anonymous volumes unless ``all=true``; before, every unused one.
        """
        filters = call.param("filters") or {}
        unknown = set(filters) - {"label", "label!", "all"}
        if unknown:
            raise Refused("bad-filters", f"unsupported filter {', '.join(sorted(unknown))}", 400)
        if "all" in filters and api_version(self.api.api_version) < (1, 42):
            # the daemon itself predates the filter: refuse it as Engine 20.10 does
            raise Refused("bad-filters", "Invalid filter 'all'", 400)
        choose = prune_filter({key: filters[key] for key in ("label", "label!") if key in filters})
        named_too = filter_flag(filters.get("all"), default=False) or \
            api_version(call.version or self.api.api_version) < (1, 42)
        deleted, space = [], 0
        for volume in self.api.volumes(filters={"dangling": True}).get("Volumes") or []:
            labels = volume.get("Labels") or {}
            own = self.owner.labelled(labels) or volume["Name"] in self.owner.volume_names
            if not (own and choose(volume) and (named_too or ANONYMOUS_VOLUME in labels)):
                continue
            size = folder_size(Path(volume.get("Mountpoint") or "/nonexistent"))
            try:
                self.api.remove_volume(volume["Name"])
            except APIError:
                continue  # a container started using it meanwhile
            deleted.append(volume["Name"])
            space += size
        return Answer(json_response(200, {"VolumesDeleted": deleted or None,
                                          "SpaceReclaimed": space}))

    def events(self, call: Call, *_) -> Forward:
        return Forward(with_label_filter(call, self.label))

    def disk_usage(self, call: Call, *_) -> Forward:
        def keep(usage: dict) -> dict:
            usage["Containers"] = [self._shown(c) for c in usage.get("Containers") or []
                                   if self.owner.labelled(c.get("Labels"))]
            usage["Volumes"] = [v for v in usage.get("Volumes") or []
                                if self.owner.labelled(v.get("Labels"))
                                or v["Name"] in self.owner.volume_names]
            usage["Images"] = [i for i in usage.get("Images") or []
                               if i["Id"] in self.owner.base_ids
                               or self.owner.listed_image_is_own(i)]
            usage["BuildCache"] = []
            return usage
        return Forward(call, transform=asked_again_on_race(self.api, call, json_transform(keep)))

    def login(self, call: Call, *_) -> Forward:
        address = call.body.get("serveraddress") or ""
        host = urlsplit(address if "//" in address else f"//{address}").netloc
        self.own_registry(host, f"logging in to {address!r}")
        return Forward(call)

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

    def close(self) -> None:
        self.disk.close()
        self.pins.close()

