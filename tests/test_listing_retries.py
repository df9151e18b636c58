"""Listings that trip over an image removed meanwhile are asked again (pure logic, fake daemon).

With the containerd image store, Engine 26.1 answers a whole image listing or disk usage with
404 when another submission removes an image while the daemon reads the list, and disk usage
with 500 ("rw layer snapshot not found") when a container goes meanwhile. What a grading
sees must not depend on that race: the sweeps and the gatekeeper ask again, a few times, and a
404 that lasts is passed on as it is.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from docker.errors import NotFound

from graders.gatekeeper.calls import Call
from graders.gatekeeper.policy import asked_again_on_race, json_transform
from graders.gatekeeper.wire import Response
from graders.sweep import LIST_ATTEMPTS, list_images

RACE = b'{"message":"content digest sha256:2e91: not found"}'
SNAPSHOT_RACE = (b'{"message":"failed to retrieve container list: rw layer snapshot not found'
                 b' for container c6c6b1c9"}')


class Daemon:
    """Answers 404 ``failures`` times, then the listing."""

    base_url = "http+docker://localhost"

    def __init__(self, failures: int, status: int = 404, message: bytes = RACE) -> None:
        self.failures, self.asked = failures, []
        self.status, self.message = status, message

    def images(self, **kwargs):
        self.asked.append(kwargs)
        if len(self.asked) <= self.failures:
            raise NotFound("content digest not found")
        return [{"Id": "sha256:1"}]

    def get(self, url, timeout):
        self.asked.append(url)
        if len(self.asked) < self.failures:
            return SimpleNamespace(status_code=self.status, reason="", content=self.message)
        return SimpleNamespace(status_code=200, reason="OK", content=b'{"Images": []}')


def test_the_sweeps_list_again_until_the_race_is_over():
    daemon = Daemon(failures=3)
    assert list_images(daemon, all=True) == [{"Id": "sha256:1"}]
    assert daemon.asked == [{"all": True}] * 4


def test_a_lasting_404_is_raised():
    daemon = Daemon(failures=LIST_ATTEMPTS)
    with pytest.raises(NotFound):
        list_images(daemon)
    assert len(daemon.asked) == LIST_ATTEMPTS


def test_the_gatekeeper_asks_the_same_request_again():
    daemon = Daemon(failures=3)
    call = Call("GET", "/v1.45", "/system/df")
    answer = asked_again_on_race(daemon, call, json_transform())(
        Response(404, "Not Found", [], RACE))
    assert (answer.status, answer.body) == (200, b'{"Images": []}')
    assert daemon.asked == [daemon.base_url + call.target] * 3


def test_the_gatekeeper_passes_a_lasting_404_on():
    daemon = Daemon(failures=LIST_ATTEMPTS + 5)
    answer = asked_again_on_race(daemon, Call("GET", "/v1.45", "/images/json"), json_transform())(
        Response(404, "Not Found", [], RACE))
    assert answer.status == 404 and len(daemon.asked) == LIST_ATTEMPTS - 1


def test_disk_usage_is_asked_again_when_a_container_went_meanwhile():
    daemon = Daemon(failures=3, status=500, message=SNAPSHOT_RACE)
    call = Call("GET", "/v1.45", "/system/df")
    answer = asked_again_on_race(daemon, call, json_transform())(
        Response(500, "Internal Server Error", [], SNAPSHOT_RACE))
    assert (answer.status, answer.body) == (200, b'{"Images": []}')
    assert len(daemon.asked) == 3


def test_another_server_error_is_passed_on_at_once():
    daemon = Daemon(failures=3)
    failure = b'{"message":"error reading disk usage: permission denied"}'
    answer = asked_again_on_race(daemon, Call("GET", "/v1.45", "/system/df"), json_transform())(
        Response(500, "Internal Server Error", [], failure))
    assert (answer.status, answer.body) == (500, failure) and daemon.asked == []
