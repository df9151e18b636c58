"""Per-submission namespaces: the names and labels that keep submissions apart on one daemon."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .settings import NAMESPACE_LABEL, NAMESPACE_LENGTH


@dataclass(frozen=True)
class Namespace:
    """A fixed-length token that prefixes names and labels every object of one submission.

    Derived from a hash, never from the student's name, so it is a valid Docker name, has a fixed
    length, and no namespace is a prefix of another (``ps1-alice`` vs ``ps1-alice-2``).
    """

    value: str

    @classmethod
    def for_submission(cls, assignment: str, student: str, salt: str = "") -> Namespace:
        digest = hashlib.sha256(f"{salt}\0{assignment}\0{student}".encode()).hexdigest()
        return cls("ns" + digest[: NAMESPACE_LENGTH - 2])

    @property
    def labels(self) -> dict[str, str]:
        return {NAMESPACE_LABEL: self.value}

    def __str__(self) -> str:
        return self.value
