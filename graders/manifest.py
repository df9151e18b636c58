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


@lru_cache(maxsize=1)
def load() -> tuple[NotebookEntry, ...]:
    """All notebooks of the course, in teaching order."""
    text = resources.files("graders").joinpath("course.yml").read_text()
    entries = []
    for nb in yaml.safe_load(text)["notebooks"]:
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
        entries.append(NotebookEntry(id=nb["id"], title=nb["title"], items=items))
    return tuple(entries)


def entry(notebook_id: str) -> NotebookEntry:
    """The manifest entry of one notebook; KeyError names the unknown id."""
    for nb in load():
        if nb.id == notebook_id:
            return nb
    raise KeyError(f"{notebook_id!r} is not in the course manifest (graders/course.yml)")
