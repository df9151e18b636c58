"""Submission and assignment folders carried as data: what is read, what is left out."""

from __future__ import annotations

import os

import pytest

from graders.folders import read_folder, write_folder
from graders.outcome import Outcome, Status
from graders.worker import merged_outcome


def test_a_folder_travels_whole_with_its_subfolders(tmp_path):
    (tmp_path / "context").mkdir()
    (tmp_path / "ps1.ipynb").write_text("{}")
    (tmp_path / "context" / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "data.csv").write_bytes(b"\x00\x01")
    files, left_out = read_folder(tmp_path)
    assert files == (("context/Dockerfile", b"FROM busybox\n"), ("data.csv", b"\x00\x01"),
                     ("ps1.ipynb", b"{}"))
    assert left_out == []
    copy = tmp_path / "copy"
    write_folder(copy, files)
    assert read_folder(copy) == (files, [])


def test_links_checkpoints_and_the_time_stamp_stay_behind(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "shadow").write_text("root:x")
    folder = tmp_path / "submission"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / ".ipynb_checkpoints" / "ps1-checkpoint.ipynb").write_text("{}")
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00")
    os.symlink(secret / "shadow", folder / "answer.txt")
    os.symlink(secret, folder / "linked-folder")
    (folder / "ps1.ipynb").write_text("{}")
    files, left_out = read_folder(folder)
    assert [path for path, _ in files] == ["ps1.ipynb"]
    assert left_out == ["answer.txt (a symbolic link)", "linked-folder (a symbolic link)"]


def test_a_folder_past_its_size_says_what_it_left_out(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 600)
    (tmp_path / "b.bin").write_bytes(b"x" * 600)
    files, left_out = read_folder(tmp_path, limit=1000)
    assert [path for path, _ in files] == ["a.bin"]
    assert left_out == ["b.bin (past the 0 MiB a folder may carry)"]


def test_a_path_that_leaves_the_folder_is_never_written(tmp_path):
    with pytest.raises(ValueError, match="not inside"):
        write_folder(tmp_path / "in", (("../out.txt", b"x"),))
    assert not (tmp_path / "out.txt").exists()


def test_several_notebooks_end_with_the_worst_status_each_detail_named():
    first = Outcome(status=Status.GRADED, seconds=1.5, verdicts={"a": {"score": 1}},
                    restored_cells=["a-tests"])
    second = Outcome(status=Status.TIMED_OUT, detail="cell b-tests ran out of time",
                     seconds=2.0, verdicts={"a": {"score": 0}})
    merged = merged_outcome({"problem1": first, "problem2": second}, several=True)
    assert merged.status == Status.TIMED_OUT
    assert merged.detail == "problem2: cell b-tests ran out of time"
    assert merged.seconds == 3.5
    assert merged.verdicts == {"problem1/a": {"score": 1}, "problem2/a": {"score": 0}}
    assert merged.restored_cells == ["problem1: a-tests"]


def test_one_notebook_keeps_its_names():
    alone = Outcome(status=Status.KERNEL_DIED, detail="the kernel died",
                    verdicts={"a": {"score": 0}})
    merged = merged_outcome({"02-containers": alone}, several=False)
    assert (merged.status, merged.detail, merged.verdicts) == (
        Status.KERNEL_DIED, "the kernel died", {"a": {"score": 0}})
