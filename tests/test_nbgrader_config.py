"""The course folder's nbgrader_config.py, read as nbgrader reads it."""

from __future__ import annotations

import pytest

from graders.errors import ConfigInvalid
from graders.grading import Coordinator, GradingOptions
from graders.nbgrader_env import DEFAULT_COURSE_ID, course_config

CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "ps-2026"
c.CourseDirectory.db_url = "sqlite:////srv/course/gradebook.db"
c.Execute.timeout = 7
c.LateSubmissionPlugin.penalty_method = "zero"
"""


def test_the_course_folders_settings_come_first_then_the_folder_in_use(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(CONFIG)
    config = course_config(tmp_path, "sqlite:///here.db")
    assert config.CourseDirectory.course_id == "ps-2026"
    assert config.CourseDirectory.root == str(tmp_path)
    assert config.CourseDirectory.db_url == "sqlite:///here.db"
    assert config.LateSubmissionPlugin.penalty_method == "zero"


def test_without_a_file_the_course_has_its_own_id(tmp_path):
    assert course_config(tmp_path, "sqlite:///x.db").CourseDirectory.course_id == \
        DEFAULT_COURSE_ID


def test_grading_takes_the_files_gradebook_and_cell_limit_unless_told_otherwise(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(CONFIG)
    configured = Coordinator(tmp_path, "ps1", GradingOptions())
    assert configured.db_url == "sqlite:////srv/course/gradebook.db"
    assert configured.cell_timeout == 7
    told = Coordinator(tmp_path, "ps1", GradingOptions(db_url="sqlite:///mine.db",
                                                       cell_timeout=12))
    assert (told.db_url, told.cell_timeout) == ("sqlite:///mine.db", 12)


def test_a_plugin_module_beside_the_file_imports(tmp_path):
    (tmp_path / "course_penalty.py").write_text("HALF = 0.5\n")
    (tmp_path / "nbgrader_config.py").write_text(
        "import course_penalty\nc = get_config()\nc.Late.half = course_penalty.HALF\n")
    assert course_config(tmp_path, "sqlite:///x.db").Late.half == 0.5


@pytest.mark.parametrize("text, named", [("c = get_config(\n", "SyntaxError"),
                                         ("import no_such_module_here\n", "ModuleNotFoundError")])
def test_a_broken_file_is_reported_with_its_error(tmp_path, text, named):
    (tmp_path / "nbgrader_config.py").write_text(text)
    with pytest.raises(ConfigInvalid, match=named) as raised:
        course_config(tmp_path, "sqlite:///x.db")
    assert "nbgrader_config.py" in str(raised.value)


def test_renamed_nbgrader_folders_are_refused_plainly(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.submitted_directory = 'handed-in'\n")
    with pytest.raises(Exception, match="submitted_directory = 'handed-in'"):
        Coordinator(tmp_path, "ps1", GradingOptions())


def test_the_learner_files_of_course_yml_are_kept_from_the_submission(tmp_path):
    """Autograde.exclude_overwriting: nbgrader copies source/ over a submission, but not the
    files a learner edits (graders/course.yml's learner_files), added to the file's own."""
    from graders import manifest

    listed = {nb.id: list(nb.learner_files) for nb in manifest.load() if nb.learner_files}
    assert listed and "context/Dockerfile" in listed["14-dockerfile"]
    assert course_config(tmp_path, "sqlite:///x.db").Autograde.exclude_overwriting == listed
    (tmp_path / "nbgrader_config.py").write_text(
        'c = get_config()\nc.Autograde.exclude_overwriting = {"ps1": ["answer.py"], '
        '"14-dockerfile": ["notes.txt"]}\n')
    kept = course_config(tmp_path, "sqlite:///x.db").Autograde.exclude_overwriting
    assert kept == {**listed, "ps1": ["answer.py"],
                    "14-dockerfile": ["notes.txt", *listed["14-dockerfile"]]}
