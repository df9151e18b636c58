"""The start page's time estimates: reading time plus time per exercise, in round numbers."""

from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from graders.pacing import MINUTES_PER_EXERCISE, WORDS_PER_MINUTE, minutes, spoken


def _graded(index: int):
    cell = new_code_cell("assert True", id=f"t{index}")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": f"t{index}", "points": 1}
    return cell


def test_minutes_grow_with_reading_and_exercises():
    prose = new_markdown_cell(" ".join(["word"] * WORDS_PER_MINUTE * 20), id="prose")
    assert minutes(new_notebook(cells=[prose])) == 20
    with_exercises = new_notebook(cells=[prose, *(_graded(i) for i in range(5))])
    assert minutes(with_exercises) == 20 + 5 * MINUTES_PER_EXERCISE
    ungraded_code = new_notebook(cells=[prose, new_code_cell("x = " + "1 + " * 5000 + "1")])
    assert minutes(ungraded_code) == 20, "code cells are run, not read word by word"


def test_minutes_are_round_and_never_zero():
    assert minutes(new_notebook(cells=[new_markdown_cell("# Title", id="t")])) == 5
    prose = new_markdown_cell(" ".join(["word"] * WORDS_PER_MINUTE * 22), id="prose")
    assert minutes(new_notebook(cells=[prose])) == 20


def test_spoken_durations():
    assert [spoken(m) for m in (45, 60, 95, 360)] == ["45 min", "1 h", "1 h 35 min", "6 h"]
