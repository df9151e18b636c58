"""``graders.lab.read_text`` asks a reading command again while its output comes back empty
(pure logic, fake container): a busy daemon now and then loses the whole output of an exec that
ends at once, and a check must not fail on that."""

from __future__ import annotations

from types import SimpleNamespace

from graders import lab


class Container:
    """Answers ``exec_run`` with no output ``losses`` times, then with the output."""

    def __init__(self, losses: int) -> None:
        self.losses, self.runs = losses, 0

    def exec_run(self, command):
        self.runs += 1
        output = b"" if self.runs <= self.losses else b"25000 100000\n"
        return SimpleNamespace(exit_code=0, output=output)


def test_a_lost_output_is_asked_again(monkeypatch):
    monkeypatch.setattr(lab.time, "sleep", lambda seconds: None)
    container = Container(losses=2)
    assert lab.read_text(container, ["cat", "/sys/fs/cgroup/cpu.max"]) == (0, "25000 100000\n")
    assert container.runs == 3


def test_an_output_is_taken_at_once(monkeypatch):
    monkeypatch.setattr(lab.time, "sleep", lambda seconds: None)
    container = Container(losses=0)
    assert lab.read_text(container, ["cat", "/boots"]) == (0, "25000 100000\n")
    assert container.runs == 1


def test_an_output_that_stays_empty_is_given_back_empty(monkeypatch):
    monkeypatch.setattr(lab.time, "sleep", lambda seconds: None)
    container = Container(losses=99)
    assert lab.read_text(container, ["cat", "/empty"], attempts=4) == (0, "")
    assert container.runs == 4
