"""A Dockerfile read as the classic builder reads it, and written again one instruction a line.

The gatekeeper must know every image a build starts from or copies out of (``FROM``,
``COPY --from``, and the same inside ``ONBUILD``) before the daemon sees the build. Lines are
joined, comments dropped and parser directives read as the daemon's parser does; then the
Dockerfile the daemon receives is written out again from the parsed instructions, one a line,
so the daemon builds exactly what was checked even where the two parsers could differ.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .rules import Refused

MAX_LINE = 64 * 1024
DIRECTIVE = re.compile(r"^#[ \t\f\r]*([a-zA-Z][a-zA-Z0-9]*)[ \t\f\r]*=[ \t\f\r]*(.+?)[ \t\f\r]*$")
WHITESPACE = re.compile(r"[\t\v\f\r ]+")
#: An image reference or stage name written plainly: no quotes, escapes or variables.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^git@", re.I)


def _refuse(message: str) -> Refused:
    return Refused("build-from-own-images", message, 400)


def _is_space(ch: str) -> bool:
    """Go's unicode.IsSpace, which the daemon's parser trims with."""
    return ch in "\t\n\v\f\r \x85\xa0" or (ord(ch) > 0xFF and (
        unicodedata.category(ch) == "Zs" or ch in "\u2028\u2029"))


def _lstrip(text: str) -> str:
    index = 0
    while index < len(text) and _is_space(text[index]):
        index += 1
    return text[index:]


@dataclass
class Instruction:
    """One instruction: its keyword in lower case, its flags, its arguments, and its line."""

    keyword: str
    flags: list[str]
    args: str
    line: str

    def flag(self, name: str) -> str | None:
        values = [f.split("=", 1)[1] if "=" in f else "" for f in self.flags
                  if f == f"--{name}" or f.startswith(f"--{name}=")]
        if len(values) > 1:
            raise _refuse(f"{self.keyword.upper()} gives --{name} twice")
        return values[0] if values else None


@dataclass
class Dockerfile:
    escape: str
    instructions: list[Instruction]

    def text(self) -> str:
        """The Dockerfile the daemon is given: the escape directive, then a line each."""
        head = [f"# escape={self.escape}"] if self.escape != "\\" else []
        continued = re.compile(rf"(^|[^{re.escape(self.escape)}]){re.escape(self.escape)}[ \t]*$")
        for instruction in self.instructions:
            if continued.search(instruction.line) or "\n" in instruction.line:
                raise _refuse(f"the line {instruction.line[:60]!r} ends in a way the daemon "
                              f"would read differently")
        return "\n".join(head + [i.line for i in self.instructions]) + "\n"


def split_flags(line: str) -> tuple[list[str], str]:
    """The builder flags at the start of an instruction's arguments (``--from=x``).

    Words end at any character Go counts as a space, as the daemon's flag reader does; a flag
    with quotes or escapes in it is refused rather than interpreted, so the daemon and the
    gatekeeper cannot read it differently.
    """
    flags, position = [], 0
    while True:
        while position < len(line) and _is_space(line[position]):
            position += 1
        if not line.startswith("--", position):
            return flags, line[position:]
        end = position
        while end < len(line) and not _is_space(line[end]):
            end += 1
        word = line[position:end]
        if word == "--":
            return flags, line[end:]
        if any(ch in word for ch in "\"'\\`"):
            raise _refuse(f"the flag {word!r} has quotes or escapes: write it plainly")
        flags.append(word)
        position = end


def _instruction(line: str) -> Instruction:
    parts = WHITESPACE.split(line.strip(), maxsplit=1)
    if not parts[0].isascii():
        # Go lower-cases keywords with Unicode's simple mapping (an "İ" in "ONBUİLD" becomes
        # "i"); a keyword must be plain ASCII to be read the same on both sides.
        raise _refuse(f"the instruction {parts[0][:20]!r} is not plain ASCII")
    keyword = parts[0].lower()
    flags, args = split_flags(parts[1]) if len(parts) == 2 else ([], "")
    return Instruction(keyword, flags, args.strip(), line)


def parse(text: str) -> Dockerfile:
    """Instructions as the classic builder's parser finds them (line joining, comments,
    directives), each kept with the line the daemon would have joined."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    escape, directives_done, seen = "\\", False, set()
    instructions: list[Instruction] = []
    index = 0

    def continuation(line: str) -> tuple[str, bool]:
        token = re.escape(escape)
        pattern = re.compile(rf"([^{token}]){token}[ \t]*$|^{token}[ \t]*$")
        if pattern.search(line):
            return pattern.sub(r"\1", line), False
        return line, True

    def is_comment(line: str) -> bool:
        return _lstrip(line).startswith("#")

    while index < len(lines):
        raw = lines[index]
        index += 1
        if len(raw) > MAX_LINE:
            raise _refuse("a Dockerfile line is longer than 64 KiB")
        stripped = _lstrip(raw)
        if not directives_done:
            match = DIRECTIVE.match(stripped)
            key = match.group(1).lower() if match else ""
            if key in ("escape", "syntax"):
                if key in seen:
                    raise _refuse(f"only one {key} parser directive can be used")
                seen.add(key)
                if key == "escape":
                    if match.group(2) not in ("\\", "`"):
                        raise _refuse(f"invalid escape token {match.group(2)!r}")
                    escape = match.group(2)
            else:
                directives_done = True
        line = "" if stripped.startswith("#") else stripped
        line, ended = continuation(line)
        if ended and line == "":
            continue
        while not ended and index < len(lines):
            raw = lines[index]
            index += 1
            if is_comment(raw):
                continue
            if _lstrip(raw) == "":
                continue
            more, ended = continuation(raw)
            line += more
        instructions.append(_instruction(line))
    if not instructions:
        raise _refuse("the Dockerfile has no instructions")
    return Dockerfile(escape, instructions)


@dataclass
class Sources:
    """What a Dockerfile builds from: image references, by the instruction that names them."""

    images: list[str]
    stages: set[str]


VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)"
                      r"(?::([-+])([A-Za-z0-9._/:@-]*))?\})")
PLAIN_PART = re.compile(r"^[A-Za-z0-9._/:@-]*$")


def _meta_args(instruction: Instruction, values: dict[str, str | None],
               build_args: dict[str, str | None]) -> None:
    """An ARG before the first FROM: its default, or the build argument that overrides it."""
    for word in WHITESPACE.split(instruction.args) if instruction.args else []:
        name, sep, default = word.partition("=")
        if len(default) >= 2 and default[0] == default[-1] and default[0] in "\"'":
            default = default[1:-1]
        given = build_args.get(name)
        values[name] = given if given is not None else (default if sep else None)


def expand(word: str, values: dict[str, str | None], where: str) -> str:
    """``$NAME``, ``${NAME}``, ``${NAME:-word}`` and ``${NAME:+word}`` in a FROM, with the
    build's arguments: written out resolved, so the daemon has nothing left to substitute."""
    if "$" not in word:
        return word
    if not PLAIN_PART.match(VARIABLE.sub("", word)):
        raise _refuse(f"{where} {word!r}: only plain names and $NAME, ${{NAME}}, "
                      f"${{NAME:-default}} or ${{NAME:+word}} are understood here")

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        found = values.get(name) or ""
        if "$" in found or not PLAIN_PART.match(found):
            raise _refuse(f"{where} {word!r}: the value of {name} is not a plain name")
        operator, word_given = match.group(3), match.group(4) or ""
        if operator == "-":
            return found or word_given
        if operator == "+":
            return word_given if found else ""
        return found
    return VARIABLE.sub(value, word)


def sources(dockerfile: Dockerfile, onbuild: dict[str, list[str]] | None = None,
            build_args: dict[str, str | None] | None = None) -> Sources:
    """Every image the build would read: each ``FROM`` that is not an earlier stage or
    ``scratch``, each ``COPY --from`` that is neither a stage name nor a stage's number.

    A FROM that uses build arguments is rewritten with their values. ``ADD`` from a URL is
    refused (the daemon would fetch it from the host's network).
    """
    images: list[str] = []
    stages: list[str] = []
    meta: dict[str, str | None] = {}
    count = 0

    def check(instruction: Instruction, inside_onbuild: bool = False) -> None:
        nonlocal count
        keyword = instruction.keyword
        if keyword == "from":
            if inside_onbuild:
                raise _refuse("ONBUILD FROM is not allowed")
            words = WHITESPACE.split(instruction.args) if instruction.args else []
            if instruction.flags:
                raise _refuse(f"FROM {' '.join(instruction.flags)}: flags on FROM (such as "
                              f"--platform, which may pull) are not allowed")
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise _refuse(f"FROM {instruction.args!r}: write FROM <image> [AS <name>]")
            image = _plain(expand(words[0], meta, "FROM"), "FROM")
            if image != words[0]:
                instruction.line = " ".join(["FROM", image, *words[1:]])
            if image.lower() != "scratch" and image.lower() not in stages:
                images.append(image)
            count += 1
            if len(words) == 3:
                stages.append(_plain(words[2], "a stage name").lower())
        elif keyword in ("copy", "add"):
            source = instruction.flag("from")
            if source is not None:
                source = _plain(source, "--from")
                if source.isdigit() and int(source) >= count:
                    raise _refuse(f"--from={source}: there is no stage number {source} yet")
                if source.lower() not in stages and not source.isdigit():
                    images.append(source)
            if keyword == "add" and any(URL.search(word.strip('"[], ')) for word in
                                        re.split(r"[\s,]+", instruction.args)):
                raise _refuse("ADD from a URL is not allowed: the daemon would fetch it from "
                              "the grading host's network")
        elif keyword == "arg" and not count and not inside_onbuild:
            _meta_args(instruction, meta, build_args or {})
        elif keyword == "onbuild":
            if inside_onbuild:
                raise _refuse("ONBUILD ONBUILD is not allowed")
            check(_instruction(instruction.args), inside_onbuild=True)

    for instruction in dockerfile.instructions:
        check(instruction)
    for triggers in (onbuild or {}).values():
        for trigger in trigger_instructions(triggers):
            check(trigger, inside_onbuild=True)
    return Sources(images, set(stages))


def trigger_instructions(triggers: list[str]) -> list[Instruction]:
    """An image's ONBUILD triggers as the builder will run them: joined by newlines and parsed
    as a Dockerfile. Only triggers of one plain line each are accepted (an image loaded from a
    crafted archive can carry any text), so no joining rule can make them mean more."""
    for trigger in triggers:
        if "\n" in trigger or not trigger.isascii() or _lstrip(trigger).startswith("#") \
                or trigger.rstrip(" \t").endswith(("\\", "`")):
            raise _refuse(f"the base image's ONBUILD trigger {trigger[:60]!r} is not a plain "
                          f"instruction")
    return [_instruction(trigger) for trigger in triggers if trigger.strip()]


def _plain(name: str, where: str) -> str:
    if "$" in name:
        raise _refuse(f"{where} {name!r}: build arguments or variables are not allowed "
                      f"here; write the image's name")
    if not PLAIN_NAME.match(name):
        raise _refuse(f"{where} {name!r}: write the name plainly (no quotes or escapes)")
    return name
