"""A gatekeeper between one submission's kernel and the Docker daemon.

``Gatekeeper`` serves a private Docker endpoint for a submission: ``policy`` decides what each
request may do, ``rules`` holds the checks that need no daemon, ``http`` the request framing.
"""

from .proxy import Gatekeeper
from .rules import Limits, Refused

__all__ = ["Gatekeeper", "Limits", "Refused"]
