"""A gatekeeper between one submission's kernel and the Docker daemon.

``Gatekeeper`` serves a private Docker endpoint for a submission. ``wire`` parses every request
with h11 and writes the daemon's requests itself; ``calls`` and ``schemas`` decode each request
as the daemon would (``fields``: Go's JSON rules) into a call; ``policy``, ``image_rules`` and
``build_rules`` judge the call, with what the submission owns in ``ownership``; ``rules`` holds
the checks that need no daemon; ``context`` and ``dockerfile`` read builds; ``binds`` and
``cgroups`` hold bind sources and limits fast on the host.
"""

from .proxy import Gatekeeper
from .rules import Limits, Refused

__all__ = ["Gatekeeper", "Limits", "Refused"]
