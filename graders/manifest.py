"""The course manifest (course.yml): notebook order, titles and the syllabus items they teach."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Item:
    """One command or concept of the tutorial and the SDK call its exercise must make."""

    id: str
    command: str
    call: str
    update: str = ""
    #: Strings of which a reference solution must contain at least one to count as making the call.
    solution_uses: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotebookEntry:
    id: str
    title: str
    items: tuple[Item, ...]
    #: Files of the assignment folder (relative paths) the learner edits and hands in.
    learner_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyPath:
    """A suggested route through the course, for one kind of learner."""

    title: str
    audience: str
    notebooks: tuple[str, ...]


@lru_cache(maxsize=1)
def _manifest() -> dict:
    return yaml.safe_load(resources.files("graders").joinpath("course.yml").read_text())


def paths() -> tuple[StudyPath, ...]:
    """The suggested paths, each with its notebooks in teaching order."""
    order = [nb.id for nb in load()]
    found = []
    for path in _manifest().get("paths", []):
        chosen = order if path["notebooks"] == "all" else path["notebooks"]
        unknown = sorted(set(chosen) - set(order))
        if unknown:
            raise KeyError(f"the path {path['title']!r} names notebooks not in the course: "
                           f"{', '.join(unknown)}")
        found.append(StudyPath(path["title"], path.get("audience", ""),
                               tuple(nb for nb in order if nb in chosen)))
    return tuple(found)


@lru_cache(maxsize=1)
def load() -> tuple[NotebookEntry, ...]:
    """All notebooks of the course, in teaching order."""
    entries = []
    for nb in _manifest()["notebooks"]:
        items = tuple(
            Item(
                id=item["id"],
                command=item["command"],
                call=item["call"],
                update=item.get("update", ""),
                solution_uses=tuple(item.get("solution_uses", ())),
            )
            for item in nb["items"]
        )
        entries.append(NotebookEntry(id=nb["id"], title=nb["title"], items=items,
                                     learner_files=tuple(nb.get("learner_files", ()))))
    return tuple(entries)


def entry(notebook_id: str) -> NotebookEntry:
    """The manifest entry of one notebook; KeyError names the unknown id."""
    for nb in load():
        if nb.id == notebook_id:
            return nb
    raise KeyError(f"{notebook_id!r} is not in the course manifest (graders/course.yml)")


def learner_files(notebook_id: str) -> tuple[str, ...]:
    """The files of an assignment folder its learner edits and hands in; none for an
    assignment the manifest does not list (any nbgrader assignment can be graded)."""
    return next((nb.learner_files for nb in load() if nb.id == notebook_id), ())
