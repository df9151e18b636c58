"""Images: what a submission may read, name, pull, push, load, commit and remove.

The course images can be run, tagged and read, never renamed or removed. A name the submission
gives an image is its own once the daemon has set it; an operation that could move names
(build, pull, import, load) has the names it took from others put back afterwards, whether or
not the client stayed to read the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING

from docker.errors import APIError

from ..daemon_lock import removing_images
from ..settings import GATEKEEPER_LABEL
from ..sweep import list_images
from .calls import Call
from .dockerfile import sources, trigger_instructions
from .rules import Refused, filter_flag, normalise, prune_filter, registry_of, split_reference
from .wire import Response, json_response

if TYPE_CHECKING:
    from .policy import Answer, Forward, Policy

#: Instructions ``changes`` may apply to a committed or imported image's configuration.
CHANGES = ("cmd", "entrypoint", "env", "expose", "label", "onbuild", "user", "volume",
           "workdir", "stopsignal", "healthcheck", "shell")
IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def messages(data: bytes) -> list[dict]:
    """The JSON objects of a progress stream (each line one), unreadable lines skipped."""
    found = []
    for line in data.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            found.append(message)
    return found


def named(call: Call) -> str:
    """The image name a tag, commit or import gives: ``repo`` may carry the tag itself."""
    repository, tag = call.param("repo") or "", call.param("tag") or ""
    return f"{repository}:{tag}" if tag else repository


class ImageRules:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.owner = policy.owner
        self.api = policy.api

    def _forward(self, call: Call, **kwargs) -> Forward:
        from .policy import Forward
        return Forward(call, **kwargs)

    def _count_images(self) -> int:
        return sum(1 for image in list_images(self.api) if self.owner.listed_image_is_own(image)
                   and image["Id"] not in self.owner.base_ids)

    def check_cap(self) -> None:
        """At most ``max_images`` images of its own, and room on the disk, before an
        operation that adds one."""
        self.policy.check_disk()
        count = self._count_images()
        if count >= self.policy.limits.max_images:
            raise Refused("image-cap", f"this submission already has {count} images, the "
                                       f"maximum is {self.policy.limits.max_images}")

    def check_changes(self, changes: list[str]) -> None:
        """``changes`` are Dockerfile instructions for the image's configuration: only those
        a configuration holds, and ONBUILD triggers that read only allowed images."""
        triggers = []
        for change in changes:
            keyword = change.strip().split(" ", 1)[0].lower()
            if keyword not in CHANGES:
                raise Refused("allowed-fields", f"the change {change[:40]!r} is not one an "
                                                f"image's configuration takes", 400)
            if keyword == "onbuild":
                triggers.append(change.strip()[len("onbuild"):].strip())
            if GATEKEEPER_LABEL in change:
                raise Refused("ownership", f"the label {GATEKEEPER_LABEL} is the gatekeeper's own")
        self.check_triggers(triggers)

    def check_triggers(self, triggers: list[str]) -> None:
        if not triggers:
            return
        trigger_instructions(triggers)
        from .dockerfile import Dockerfile, _instruction
        found = sources(Dockerfile("\\", [_instruction("FROM scratch")]), {"": triggers})
        for image in found.images:
            self.readable_source(image)

    def readable_source(self, reference: str) -> dict:
        """An image a build or trigger reads: a course image or the submission's own, present."""
        image = self.owner.image(reference)
        if image is None:
            raise Refused("build-from-own-images", f"{reference!r} is not an image here: builds "
                                                   f"start from the course images or the "
                                                   f"submission's own (nothing is pulled)",
                          in_stream=True)
        if image["Id"] not in self.owner.base_ids and not self.owner.own_image(image):
            raise Refused("build-from-own-images", f"image {reference!r} belongs to someone "
                                                   f"else", in_stream=True)
        self.check_triggers((image.get("Config") or {}).get("OnBuild") or [])
        return image

    # -- reading -----------------------------------------------------------------------------

    def list(self, call: Call, *_) -> Forward:
        from .policy import asked_again_on_race, json_transform

        def visible(image: dict) -> bool:
            return image["Id"] in self.owner.base_ids or self.owner.listed_image_is_own(image)
        shown = json_transform(lambda items: [i for i in items if visible(i)])
        return self._forward(call, transform=asked_again_on_race(self.api, call, shown))

    def save(self, call: Call, *_) -> Forward:
        for name in call.params("names"):
            self.owner.readable_image(name)
        return self._forward(call)

    def read(self, call: Call, ident: str) -> Forward:
        from .policy import json_transform
        self.owner.readable_image(ident)
        json_answer = call.path.endswith(("/json", "/history"))
        return self._forward(call, transform=json_transform() if json_answer else None)

    # -- naming ------------------------------------------------------------------------------

    def _named_when(self, status: int, name: str) -> Callable[[Response], Response]:
        def transform(response: Response) -> Response:
            if response.status == status:
                self.owner.name_images(name)
            return response
        return transform

    def tag(self, call: Call, ident: str) -> Forward:
        self.owner.readable_image(ident)
        name = self.owner.free_reference(named(call))
        return self._forward(call, transform=self._named_when(201, name))

    def push(self, call: Call, ident: str) -> Forward:
        self.owner.readable_image(ident)
        self.policy.own_registry(registry_of(ident), f"pushing {ident!r}", in_stream=True)
        return self._forward(call)

    def remove(self, call: Call, ident: str) -> Forward:
        """A name of its own is removed (untagged); an image by id only if every name it has
        is the submission's, so removing never takes away someone else's name."""
        image = self.owner.image(ident)
        name = normalise(ident)
        with self.owner.lock:
            own_name = name in self.owner.references
        if image is not None and not own_name:
            self.owner.writable_image(image, f"image {ident!r}")
            names = {normalise(t) for t in image.get("RepoTags") or [] if t != "<none>:<none>"}
            with self.owner.lock:
                others = names - self.owner.references
            if name not in names:  # by id or id prefix, as the daemon resolved it
                if others:
                    raise Refused("ownership", f"image {ident!r} also has names that are not "
                                               f"this submission's ({', '.join(sorted(others))})")
                call = call.with_path(f"/images/{image['Id']}")

        def forget(response: Response) -> Response:
            if response.status == 200:
                self.owner.unname_image(name)
            return response
        return self._forward(call, transform=forget, hold=removing_images)

    def guard_references(self, names: Callable[[], set[str]]) -> Callable[[int | None], None]:
        """After an operation that may rename images: put back names it took from others.

        A name that pointed at a course image or at someone else's image before the operation
        is given back to that image, even if the operation announced it as loaded. Only the
        names the operation itself could set count (``names()``, asked afterwards): meanwhile
        other submissions move their own names, which is none of this one's business. Names
        that now point at the submission's images become its own.
        """
        images = list_images(self.api, all=True)  # one listing serves both snapshots
        taken = {tag: image["Id"] for image in images
                 if image["Id"] in self.owner.base_ids or not self.owner.listed_image_is_own(image)
                 for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"}
        before = {image["Id"] for image in images}

        def restore(_status: int | None) -> None:
            wanted = {normalise(name) for name in names()}
            new = {i for i in wanted if IMAGE_ID.match(i)} - before
            self.owner.claim_images(*new)
            for image in list_images(self.api):
                for tag in image.get("RepoTags") or []:
                    if normalise(tag) not in wanted:
                        continue
                    old = taken.get(tag)
                    if old and old != image["Id"]:
                        repository, name = split_reference(tag)
                        self.api.tag(old, repository, name, force=True)
                    elif not old:
                        if image["Id"] not in before:
                            self.owner.claim_images(image["Id"])
                        self.owner.name_images(tag)
        return restore

    def create(self, call: Call, *_) -> Forward:
        """Pull (only from an own registry) or import from the request body (labelled)."""
        if call.param("platform"):
            raise Refused("allowed-fields", "choosing a platform is not allowed", 400)
        source = call.param("fromImage")
        if source:
            tag = call.param("tag") or ""
            reference = source + (f"@{tag}" if tag.startswith("sha256:") else
                                  f":{tag}" if tag else "")
            self.policy.own_registry(registry_of(reference), f"pulling {reference!r}")
            self.owner.free_reference(reference)
            self.check_cap()
            return self._forward(call, after=self.guard_references(lambda: {reference}))
        if call.param("fromSrc") != "-":
            raise Refused("own-registry-only", "importing from a URL is not allowed: send the "
                                               "archive in the request")
        names = {named(call)} if call.param("repo") else set()
        for name in names:
            self.owner.free_reference(name)
        self.check_changes(call.params("changes"))
        self.check_cap()
        changes = [*call.params("changes"), f'LABEL {GATEKEEPER_LABEL}="{self.owner.namespace}"']
        return self._forward(call.with_query(changes=changes),
                             after=self.guard_references(lambda: names))

    def load(self, call: Call, *_) -> Forward:
        loaded: set[str] = set()
        buffer = bytearray()

        def note(chunk: bytes) -> None:
            buffer.extend(chunk)
            for message in messages(bytes(buffer)):
                text = message.get("stream") or ""
                for prefix in ("Loaded image: ", "Loaded image ID: "):
                    if text.startswith(prefix):
                        loaded.add(text[len(prefix):].strip())
            del buffer[:buffer.rfind(b"\n") + 1]
        self.check_cap()
        return self._forward(call, observe=note, after=self.guard_references(lambda: loaded))

    def commit(self, call: Call, *_) -> Forward:
        own = self.owner.container(call.param("container") or "")
        if own:
            call = call.with_query(container=own)
        name = self.owner.free_reference(named(call)) if call.param("repo") else ""
        self.check_changes(call.params("changes"))
        self.check_triggers(call.body.get("OnBuild") or [])
        self.check_cap()
        changes = [*call.params("changes"), f'LABEL {GATEKEEPER_LABEL}="{self.owner.namespace}"']
        return self._forward(call.with_query(changes=changes),
                             transform=self._named_when(201, name) if name else None)

    def prune(self, call: Call, *_) -> Answer:
        """Prune only this submission's unused images, as the daemon's prune would.

        Built images carry no ownership label, so a label-scoped prune would miss them: the
        gatekeeper chooses the images and removes them one by one, newest first.
        """
        from .policy import Answer
        filters = call.param("filters") or {}
        try:
            choose = prune_filter(filters)
        except ValueError as error:
            raise Refused("bad-filters", f"cannot read the prune filters: {error}", 400) from None
        dangling = filter_flag(filters.get("dangling"), default=True)
        used = {container["ImageID"] for container in self.api.containers(all=True)}
        deleted, space = [], 0
        images = list_images(self.api, filters={"dangling": True} if dangling else None)
        chosen = [image for image in sorted(images, key=lambda i: i.get("Created", 0), reverse=True)
                  if image["Id"] not in used and image["Id"] not in self.owner.base_ids
                  and choose(image) and self.owner.listed_image_is_own(image)
                  and not self._named_by_others(image)]
        with removing_images() if chosen else nullcontext():
            for image in chosen:
                try:
                    deleted += self.api.remove_image(image["Id"], force=not dangling)
                    space += image.get("Size", 0)
                except APIError:
                    continue  # a child image or a container still needs it
                for tag in image.get("RepoTags") or []:
                    self.owner.unname_image(tag)
        return Answer(json_response(200, {"ImagesDeleted": deleted or None,
                                          "SpaceReclaimed": space}))

    def _named_by_others(self, image: dict) -> bool:
        with self.owner.lock:
            return bool({normalise(t) for t in image.get("RepoTags") or []
                         if t != "<none>:<none>"} - self.owner.references)

