"""Builds under the same rules as everything else.

Build parameters come from an allow-list; the context is read and the Dockerfile parsed before
the daemon sees them (``context``, ``dockerfile``): every image it starts from or copies out of
must be a course image or the submission's own, present here (nothing is pulled). The daemon
is sent the checked Dockerfile in a fresh archive, with its steps under the submission's
cgroup (a pids and memory limit the classic builder does not offer per step). The images a
build makes are the submission's by the id the daemon reports for the result (its ``aux``
message, which no step's output can write) and that image's parents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..daemon_lock import BuildHold
from ..settings import GATEKEEPER_LABEL
from .calls import Call
from .context import read_context
from .dockerfile import sources
from .image_rules import ImageRules, messages
from .rules import Refused, check_resources, normalise

if TYPE_CHECKING:
    from .policy import Forward, Policy

NETWORK_MODES = ("", "default", "bridge", "none")
#: A step's image, as the classic builder reports it (``---> 0123456789ab``), or a step's
#: container appearing and going.
STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$", re.M)
STEP_CONTAINER = re.compile(r"(Running in|Removing intermediate container) [0-9a-f]{12}")
REFUSED_PARAMS = {
    "remote": "building from a remote context is not allowed",
    "pull": "pulling base images is not allowed (builds start from images here)",
    "squash": "squashing is not allowed",
    "cgroupparent": "choosing the build's cgroup is not allowed",
    "session": "build sessions (BuildKit) are not available here",
    "buildid": "build sessions (BuildKit) are not available here",
    "outputs": "build outputs (BuildKit) are not available here",
    "ulimits": "ulimits are not allowed (limits are the gatekeeper's)",
    "securityopt": "security options are not allowed on builds",
    "platform": "choosing a platform (which may pull) is not allowed",
}


class BuildRules:
    def __init__(self, policy: Policy, images: ImageRules) -> None:
        self.policy = policy
        self.images = images
        self.owner = policy.owner
        self.api = policy.api

    def _check_params(self, call: Call) -> None:
        for name, message in REFUSED_PARAMS.items():
            if call.param(name):
                rule = "no-cgroup-escape" if name == "cgroupparent" else "endpoint-not-allowed"
                raise Refused(rule, message)
        if call.param("isolation") not in (None, "", "default"):
            raise Refused("no-runtime", f"isolation {call.param('isolation')!r} is not allowed")
        if call.param("version") not in (None, "", "1"):
            raise Refused("endpoint-not-allowed", "only the classic builder (version 1) is "
                                                  "available here")
        mode = call.param("networkmode") or ""
        if mode not in NETWORK_MODES:
            rule = "no-host-namespaces" if mode == "host" or ":" in mode else "plain-networks"
            raise Refused(rule, f"building with network {mode!r} is not allowed (bridge, "
                                f"none and the default are)")
        limits = self.policy.limits
        check_resources({"Memory": call.param("memory") or 0,
                         "MemorySwap": call.param("memswap") or 0,
                         "CpuShares": call.param("cpushares") or 0,
                         "CpuQuota": call.param("cpuquota") or 0,
                         "CpuPeriod": call.param("cpuperiod") or 0,
                         "ShmSize": call.param("shmsize") or 0}, limits)

    def build(self, call: Call, *_) -> Forward:
        from .policy import Forward
        self._check_params(call)
        tags = [self.owner.free_reference(tag) for tag in call.params("t")]
        for image in call.param("cachefrom") or []:
            self.images.readable_source(image)
        context = read_context(call.body, call.param("dockerfile"))
        self._check_stamp(call, context)
        starts = {self.images.readable_source(image)["Id"]
                  for image in sources(context.dockerfile,
                                                build_args=call.param("buildargs")).images}
        self.images.check_cap()
        query = {"rm": True, "forcerm": True, "dockerfile": context.dockerfile_name}
        if not call.param("memory"):
            query["memory"] = self.policy.limits.memory
        if self.policy.cgroup is not None:
            query["cgroupparent"] = self.policy.cgroup.build_parent
        call = call.with_query(**query)
        call.body = context.archive()
        hold = BuildHold()
        restore = self.images.guard_references(lambda: set(tags))
        started = time.time()

        def built(final: str) -> None:
            """The result's images are the submission's before the client reads the end."""
            self.owner.claim_built(final, starts)
            for tag in tags:
                found = self.owner.image(tag)
                if found is not None and found["Id"] == final:
                    self.owner.name_images(normalise(tag))
        follow = _BuildOutput(hold, built)

        def after(status: int | None) -> None:
            try:
                if not follow.final:
                    self._claim_failed(follow, starts, started)
            finally:
                restore(status)
        return Forward(call, after=after, observe=follow, hold=lambda: hold)

    @staticmethod
    def _check_stamp(call: Call, context) -> None:
        """The gatekeeper's label is its own: an image (and every container made from it, which
        inherits its labels) must not carry it by the build's doing."""
        stamped = GATEKEEPER_LABEL in (call.param("labels") or {}) or any(
            GATEKEEPER_LABEL in instruction.line for instruction in context.dockerfile.instructions
            if instruction.keyword in ("label", "onbuild"))
        if stamped:
            raise Refused("ownership", f"the label {GATEKEEPER_LABEL} is the gatekeeper's own",
                          in_stream=True)

    def _claim_failed(self, follow: _BuildOutput, starts: set[str], started: float) -> None:
        """The images of a build that failed: the step images its output names, each checked
        on the daemon (untagged, made since the build began, descended from its bases)."""
        for short in follow.steps:
            found = self.owner.image(short)
            if found is None or found.get("RepoTags") or not self._made_by_build(
                    found, starts, started):
                continue
            self.owner.claim_built(found["Id"], starts)

    def _made_by_build(self, image: dict, starts: set[str], started: float) -> bool:
        """An untagged image made since the build began whose parents lead, through untagged
        images, to an image the build started from."""
        created = image.get("Created", "")
        if not created or _timestamp(created) < started - 2:
            return False
        parent = image.get("Parent") or ""
        while parent and parent not in starts and parent not in self.owner.base_ids:
            found = self.owner.image(parent)
            if found is None or found.get("RepoTags"):
                return False
            parent = found.get("Parent") or ""
        return bool(parent)


def _timestamp(text: str) -> float:
    """Seconds since the epoch of the daemon's RFC 3339 time (nanoseconds cut off)."""
    from datetime import datetime
    main = text.split(".")[0].removesuffix("Z")
    return datetime.fromisoformat(main + "+00:00").timestamp()


class _BuildOutput:
    """Reads a build's progress stream as it passes: the result's id from the daemon's own
    ``aux`` message, the step images it prints, and when a step's container runs (the
    build-cache lock is let go meanwhile, see ``BuildHold``)."""

    def __init__(self, hold: BuildHold, built: Callable[[str], None]) -> None:
        self.hold = hold
        self.built = built
        self.final = ""
        self.steps: list[str] = []
        self._pending = bytearray()

    def __call__(self, chunk: bytes) -> Callable[[], None] | None:
        self._pending += chunk
        complete = self._pending.rfind(b"\n")
        if complete < 0:
            return None
        lines, self._pending = bytes(self._pending[:complete + 1]), self._pending[complete + 1:]
        final = ""
        for message in messages(lines):
            aux = message.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                final = self.final = aux["ID"]
            text = message.get("stream")
            if not isinstance(text, str):
                continue
            self.steps += STEP_IMAGE.findall(text)
            markers = STEP_CONTAINER.findall(text)
            if markers and markers[-1] == "Running in":
                self.hold.pause()
            elif markers:
                self.hold.resume()
        return (lambda: self.built(final)) if final else None
