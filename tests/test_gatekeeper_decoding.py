"""Requests decoded as the daemon decodes them, and builds read as the daemon reads them.

Pure logic, no daemon: what the gatekeeper's decoders make of bodies, queries, targets,
Dockerfiles and build contexts. Whether the daemon then holds what they promise is for
tests/test_gatekeeper_differential.py, on the real daemon.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from graders.gatekeeper.calls import check_content_type, decode_auth, split_target
from graders.gatekeeper.context import read_context
from graders.gatekeeper.dockerfile import parse, sources, trigger_instructions
from graders.gatekeeper.fields import decode_json
from graders.gatekeeper.rules import Refused
from graders.gatekeeper.schemas import BUILD, CONTAINER_CREATE, LIST_CONTAINERS


def create(body: str) -> dict:
    return decode_json(CONTAINER_CREATE, body.encode())


def test_field_names_match_whatever_their_case_and_come_out_in_the_daemons_spelling():
    decoded = create('{"image": "busybox", "hostconfig": {"PRIVILEGED": true, "binds": ["/a:/b"]}}')
    assert decoded == {"Image": "busybox", "HostConfig": {"Privileged": True, "Binds": ["/a:/b"]}}


@pytest.mark.parametrize("body", [
    '{"HostConfig": {"Privileged": false, "privileged": true}}',
    '{"HostConfig": {}, "hostConfig": {"Privileged": true}}',
    '{"Labels": {"a": "1"}, "labels": null}',
    '{"Labels": {"a": "1", "a": "2"}}',
])
def test_a_field_given_twice_under_any_spelling_is_refused(body):
    with pytest.raises(Refused, match="twice"):
        create(body)


@pytest.mark.parametrize("body, message", [
    ('{"Privileged": true}', "not a field"),  # host settings at the top: read by the daemon
    ('{"HostConfig": {"Memmory": 1}}', "not a field"),
    ('{"HostConfig": {"Privi\\u017eeged": true}}', "not plain ASCII"),
    ('{"HostConfig": {"NetworK\\u212aMode": "host"}}', "not plain ASCII"),
    ('{"Image": "a"} {"HostConfig": {"Privileged": true}}', "not valid JSON"),
    ('{"HostConfig": {"Memory": 1.5}}', "expected an integer"),
    ('{"HostConfig": {"Memory": NaN}}', "not valid JSON"),
    ('{"Image": "a\\u0000b"}', "NUL"),
    ('{"Image": "\\ud800"}', "surrogate"),
    ('["Image"]', "expected an object"),
])
def test_what_the_daemon_could_read_another_way_is_refused(body, message):
    with pytest.raises(Refused, match=message):
        create(body)


def test_null_is_no_value_and_a_single_command_string_is_a_list():
    assert create('{"Cmd": "echo hi", "Hostname": null, "HostConfig": {"CapAdd": null}}') == {
        "Cmd": ["echo hi"], "HostConfig": {}}


def test_query_parameters_are_decoded_as_the_daemon_reads_them():
    query = LIST_CONTAINERS.query
    values = query.decode([("all", "False"), ("limit", "-1"),
                           ("filters", '{"label": {"a": true}}')])
    assert values == {"all": False, "limit": -1, "filters": {"label": ["a"]}}
    assert query.encode(values) == [("all", "0"), ("limit", "-1"),
                                    ("filters", '{"label":{"a":true}}')]
    assert BUILD.query.decode([("t", "a:1"), ("t", "b:1"), ("rm", "yes")]) == {
        "t": ["a:1", "b:1"], "rm": True}
    for pairs, message in (([("all", "1"), ("all", "0")], "twice"),
                           ([("privileged", "1")], "not one the gatekeeper accepts"),
                           ([("limit", "1e3")], "not an integer")):
        with pytest.raises(Refused, match=message):
            query.decode(pairs)


def test_targets_are_read_strictly():
    assert split_target("/v1.41/containers/a%20b/json?all=1&x=%2B") == (
        "/v1.41", "/containers/a b/json", [("all", "1"), ("x", "+")])
    for target in ("/containers/json?all=1;size=1", "/containers/%zz/json", "/a#b", "x"):
        with pytest.raises(Refused):
            split_target(target)
    with pytest.raises(Refused, match="form"):
        check_content_type("application/x-www-form-urlencoded; charset=utf-8")
    check_content_type("application/json")
    assert decode_auth("eyJ1c2VybmFtZSI6ICJhIn0") == {"username": "a"}


def test_dockerfile_lines_are_joined_as_the_classic_builder_joins_them():
    text = ("# escape=`\n"
            "FROM busybox:1.35.0 AS base\n"
            "# a comment\n"
            "RUN echo a `\n"
            "  # a comment inside\n"
            "\n"
            "  b\n"
            "from base\n"
            "COPY --chown=1 --from=0 /a /b\n"
            "onbuild COPY --from=other:1 /x /y\n")
    dockerfile = parse(text)
    assert [i.keyword for i in dockerfile.instructions] == ["from", "run", "from", "copy",
                                                           "onbuild"]
    assert dockerfile.instructions[1].line == "RUN echo a   b"
    found = sources(dockerfile)
    assert found.images == ["busybox:1.35.0", "other:1"] and found.stages == {"base"}
    assert dockerfile.text().startswith("# escape=`\nFROM busybox:1.35.0 AS base\nRUN echo a")


@pytest.mark.parametrize("text, message", [
    ("ARG B=busybox\nFROM $B-${B:?x}\n", "understood"),
    ("ARG B='$C'\nFROM $B\n", "not a plain name"),
    ("FROM busybox\nCOPY --from=${X} /a /b\n", "variables"),
    ('FROM "busybox"\n', "plainly"),
    ("FROM --platform=linux/arm64 busybox\n", "flags on FROM"),
    ("FROM busybox\nCOPY --from=\"x\" /a /b\n", "quotes"),
    ("FROM busybox\nADD https://example.org/x /x\n", "URL"),
    ("FROM busybox\nONBUİLD COPY --from=x /a /b\n", "ASCII"),
    ("FROM busybox\nCOPY --from=3 /a /b\n", "no stage number"),
    ("FROM busybox\nONBUILD ONBUILD RUN true\n", "ONBUILD ONBUILD"),
])
def test_images_a_build_reads_are_written_plainly_or_refused(text, message):
    with pytest.raises(Refused, match=message):
        sources(parse(text))


def test_build_arguments_in_from_are_written_out_resolved():
    dockerfile = parse("ARG BASE=busybox:1.35.0 TAG\nARG OTHER\nFROM $BASE AS one\n"
                       "FROM ${OTHER:-one}\nFROM base:${TAG:+x}y\n")
    found = sources(dockerfile, build_args={"TAG": "1", "BASE": None})
    assert found.images == ["busybox:1.35.0", "base:xy"]
    assert [i.line for i in dockerfile.instructions[2:]] == [
        "FROM busybox:1.35.0 AS one", "FROM one", "FROM base:xy"]


def test_a_flag_ends_at_any_space_go_knows():
    """A no-break space ends a flag for the daemon's flag reader: the next flag counts."""
    found = sources(parse("FROM busybox\nCOPY --chown=1\u00a0--from=other:1 /a /b\n"))
    assert found.images == ["busybox", "other:1"]


def test_only_plain_onbuild_triggers_are_accepted():
    assert [i.keyword for i in trigger_instructions(["RUN true", "COPY --from=x a b"])] == [
        "run", "copy"]
    for triggers in (["COPY \\", "--from=x a b"], ["# escape=`"], ["RUN a\nFROM b"]):
        with pytest.raises(Refused):
            trigger_instructions(triggers)


def archive(*entries: tuple[str, bytes | str | None], compression: str = "") -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=f"w:{compression}") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            elif content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


def test_a_context_is_sent_again_with_the_checked_dockerfile():
    context = read_context(archive(("./dockerfile", b"FROM busybox\nRUN a \\\n b\n"),
                                   ("app", None), ("app/x", b"x"), compression="gz"), None)
    assert context.dockerfile_name == "dockerfile"
    with tarfile.open(fileobj=io.BytesIO(context.archive())) as tar:
        assert tar.getnames() == ["dockerfile", "app", "app/x"]
        assert tar.extractfile("dockerfile").read() == b"FROM busybox\nRUN a  b\n"


@pytest.mark.parametrize("entries, message", [
    ([("Dockerfile", b"FROM a\n"), ("./Dockerfile", b"FROM b\n")], "two entries"),
    ([("Dockerfile", "other"), ("other", b"FROM a\n")], "regular file"),
    ([("d", "."), ("d/Dockerfile", b"FROM a\n"), ("Dockerfile", b"FROM a\n")], "symlink"),
    ([("../Dockerfile", b"FROM a\n")], "plain"),
    ([("x", b"")], "Cannot locate"),
])
def test_contexts_two_readers_could_take_two_ways_are_refused(entries, message):
    with pytest.raises(Refused, match=message):
        read_context(archive(*entries), None)
