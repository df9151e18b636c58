"""Extra submissions start only while the cores idle (pure logic: a written /proc/stat, a clock)."""

from __future__ import annotations

import os

import pytest

from graders import pool
from graders.core_load import CoreLoad
from graders.pool import Admission

CPUS = sorted(os.sched_getaffinity(0))


def write_stat(path, busy: int, idle: int, outside: int = 0) -> None:
    """Every usable core with ``busy`` user ticks and ``idle`` idle ticks; a core not ours too."""
    lines = [f"cpu  {busy * len(CPUS)} 0 0 {idle * len(CPUS)} 0 0 0 0 0 0"]
    lines += [f"cpu{n} {busy} 0 0 {idle} 0 0 0 0 0 0" for n in CPUS]
    lines.append(f"cpu{max(CPUS) + 1} {outside} 0 0 0 0 0 0 0 0 0")
    path.write_text("\n".join(lines) + "\nintr 0\n")


def test_the_busy_share_counts_only_usable_cores_since_the_last_reading(tmp_path):
    stat = tmp_path / "stat"
    write_stat(stat, busy=100, idle=100)
    load = CoreLoad(stat)
    write_stat(stat, busy=130, idle=170, outside=10_000)  # 30 busy of 100 ticks per core
    assert load.busy_share() == pytest.approx(0.3)
    write_stat(stat, busy=220, idle=180)  # 90 busy of 100
    assert load.busy_share() == pytest.approx(0.9)


def test_an_unreadable_load_counts_as_full(tmp_path):
    assert CoreLoad(tmp_path / "missing").busy_share() == 1.0


class FixedLoad:
    def __init__(self, share: float) -> None:
        self.share = share
        self.readings = 0

    def busy_share(self) -> float:
        self.readings += 1
        return self.share


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(pool.time, "monotonic", lambda: now[0])
    return now


def test_steady_workers_always_start_extra_ones_only_on_idle_cores(clock):
    idle, busy = FixedLoad(0.5), FixedLoad(0.95)
    for load in (idle, busy):
        admission = Admission(steady=4, extra=2, load=load)
        assert all(admission.allows(running) for running in range(4))
        assert load.readings == 0
        clock[0] += pool.LOAD_WINDOW
        assert admission.allows(4) is (load is idle)
    assert not Admission(steady=4, extra=0, load=None).allows(4)


def test_one_extra_start_per_load_window_and_never_past_the_ceiling(clock):
    load = FixedLoad(0.1)
    admission = Admission(steady=2, extra=2, load=load)
    clock[0] += pool.LOAD_WINDOW
    assert admission.allows(2)
    assert not admission.allows(3)  # the last start has not shown in the load yet
    clock[0] += pool.LOAD_WINDOW
    assert admission.allows(3)
    clock[0] += pool.LOAD_WINDOW
    assert not admission.allows(4)
    assert load.readings == 2


def test_workers_fork_from_a_server_only_where_they_can_watch_the_coordinator(monkeypatch):
    """Fork-server workers outlive a killed coordinator unless a pidfd tells them it ended."""
    assert pool._worker_context().get_start_method() == "forkserver"

    def no_pidfds(pid):
        raise OSError("pidfd_open: function not implemented")
    monkeypatch.setattr(pool.os, "pidfd_open", no_pidfds)
    assert pool._worker_context().get_start_method() == "spawn"
