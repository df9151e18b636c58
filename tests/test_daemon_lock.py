"""The build-cache lock: removals wait for builds between their steps, new builds for a removal."""

from __future__ import annotations

import threading
import time

import pytest

from graders import daemon_lock


@pytest.fixture(autouse=True)
def own_daemon(monkeypatch, tmp_path):
    """Lock files of a daemon address no other test or grading run uses."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    monkeypatch.setattr(daemon_lock, "BUILD_CACHE_WAIT", 5.0)


def _in_thread(lock, events: list[str], name: str, hold: float) -> threading.Thread:
    def work():
        with lock():
            events.append(f"{name} in")
            time.sleep(hold)
            events.append(f"{name} out")
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_builds_run_together_and_a_removal_waits_for_them():
    events: list[str] = []
    builds = [_in_thread(daemon_lock.BuildHold, events, f"build{n}", 0.4) for n in (1, 2)]
    time.sleep(0.1)
    removal = _in_thread(daemon_lock.removing_images, events, "removal", 0.1)
    for thread in [*builds, removal]:
        thread.join()
    assert events[:2] == ["build1 in", "build2 in"] or events[:2] == ["build2 in", "build1 in"]
    assert events.index("removal in") > max(events.index("build1 out"), events.index("build2 out"))


def test_a_waiting_removal_keeps_new_builds_from_starting():
    events: list[str] = []
    first = _in_thread(daemon_lock.BuildHold, events, "build1", 0.5)
    time.sleep(0.1)
    removal = _in_thread(daemon_lock.removing_images, events, "removal", 0.3)
    time.sleep(0.1)
    late = _in_thread(daemon_lock.BuildHold, events, "build2", 0.1)
    for thread in (first, removal, late):
        thread.join()
    assert events == ["build1 in", "build1 out", "removal in", "removal out",
                      "build2 in", "build2 out"]


def test_a_lock_not_had_in_time_is_given_up(monkeypatch):
    monkeypatch.setattr(daemon_lock, "BUILD_CACHE_WAIT", 0.3)
    events: list[str] = []
    stuck = _in_thread(daemon_lock.BuildHold, events, "stuck build", 1.5)
    time.sleep(0.1)
    started = time.monotonic()
    with daemon_lock.removing_images():
        waited = time.monotonic() - started
    stuck.join()
    assert 0.2 <= waited < 1.2


def test_a_build_paused_in_a_step_container_lets_removals_through():
    events: list[str] = []
    hold = daemon_lock.BuildHold()
    with hold:
        hold.pause()  # a long RUN step: its container keeps the cached image it started from
        removal = _in_thread(daemon_lock.removing_images, events, "removal", 0.3)
        time.sleep(0.1)
        assert events == ["removal in"]
        hold.resume()  # the step ends while the removal still runs: wait for it to end
        events.append("build resumed")
        removal.join()
        assert events == ["removal in", "removal out", "build resumed"]
        late = _in_thread(daemon_lock.removing_images, events, "late removal", 0)
        time.sleep(0.2)
        assert "late removal in" not in events
    late.join()
    assert events[-2:] == ["late removal in", "late removal out"]
