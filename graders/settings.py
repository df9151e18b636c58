"""Names and defaults shared by the tooling and the notebooks, declared once.

Labels are how the course recognises its own Docker objects: provisioned images carry
``PROVISIONED_LABEL`` so no cleanup ever removes them, and everything an exercise creates carries
``NAMESPACE_LABEL`` so one submission's cleanup never touches another's.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Label on every object an exercise creates; its value is the submission's namespace.
NAMESPACE_LABEL = "org.docker-course.namespace"
#: Label the gatekeeper stamps on everything a submission creates through it, valued with the
#: submission's namespace: its own mark of ownership, apart from the labels exercises choose.
GATEKEEPER_LABEL = "org.docker-course.gatekeeper"
#: Label on the course's own base images; cleanup never removes an image that has it.
PROVISIONED_LABEL = "org.docker-course.provisioned"

#: Images the notebooks use, named as a learner with internet access would pull them.
BUSYBOX_IMAGE = "busybox:1.35.0"
REGISTRY_IMAGE = "registry:2"
COURSE_IMAGES = (BUSYBOX_IMAGE, REGISTRY_IMAGE)

#: The assignment the demo grades, with the sample submissions bundled in examples/submissions.
DEMO_ASSIGNMENT = "02-containers"

#: Per-cell and per-submission time limits for grading, in seconds.
CELL_TIMEOUT = 30
SUBMISSION_TIMEOUT = 300

#: grade_id of each notebook's locked settings cell, the one the grader injects its values after.
PARAMETERS_GRADE_ID = "parameters"

#: Length of a submission namespace: fixed, so no namespace is a prefix of another.
NAMESPACE_LENGTH = 12


def project_root() -> Path:
    """The course repository: COURSE_ROOT if set, else the checkout this package lives in."""
    if "COURSE_ROOT" in os.environ:
        return Path(os.environ["COURSE_ROOT"]).resolve()
    return Path(__file__).resolve().parent.parent
