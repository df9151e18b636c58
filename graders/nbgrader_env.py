"""Running nbgrader's own applications from inside this process, configured in one place."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from traitlets.config import Config, PyFileConfigLoader

from . import manifest
from .errors import ConfigInvalid

#: The configuration file nbgrader reads from the course folder.
CONFIG_FILE = "nbgrader_config.py"
#: The course id when nbgrader_config.py names none (nbgrader's exchange needs one).
DEFAULT_COURSE_ID = "docker-course"


@contextmanager
def tools_on_path() -> Iterator[None]:
    """Put this interpreter's ``bin`` first on PATH for the duration.

    nbgrader shells out to ``alembic`` by name when it creates a gradebook, which fails when the
    course runs from a virtual environment that was never activated.
    """
    bindir = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = bindir + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def stamp_new_gradebook(db_url: str) -> None:
    """Give a gradebook that has no tables yet nbgrader's schema version, found in-process.

    nbgrader's Gradebook asks an ``alembic heads`` subprocess for it when it creates a database:
    a fresh interpreter importing nbgrader, seconds on every new gradebook. With the version
    already stamped, Gradebook only creates the tables.
    """
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            if inspect(connection).get_table_names():
                return
            config = AlembicConfig()
            config.set_main_option("script_location", ALEMBIC_DIR)
            head = ScriptDirectory.from_config(config).get_current_head()
            connection.execute(text("CREATE TABLE alembic_version "
                                    "(version_num VARCHAR(32) NOT NULL)"))
            connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                               {"head": head})
    finally:
        engine.dispose()


def course_config(root: Path, db_url: str, **sections: dict) -> Config:
    """An nbgrader Config for the course folder ``root`` with gradebook ``db_url``.

    The folder's own nbgrader_config.py comes first (course id, exchange, late penalties and
    the rest), then the folder and gradebook in use, then ``sections``, which add or override
    configuration classes, e.g. ``Execute={"timeout": 30}``.
    """
    config = Config()
    config.CourseDirectory.course_id = DEFAULT_COURSE_ID
    config.Exchange.root = str(_private_exchange())
    config.merge(file_config(root))
    config.Autograde.exclude_overwriting = kept_learner_files(config)
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = db_url
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


def kept_learner_files(config: Config) -> dict[str, list[str]]:
    """Autograde.exclude_overwriting: the files nbgrader's autograde must take from the
    submission rather than from source/, which are the manifest's ``learner_files`` of each
    assignment (graders/course.yml) and whatever ``config`` already lists."""
    kept = {assignment: list(files) for assignment, files in
            (configured(config, "Autograde.exclude_overwriting", default={}) or {}).items()}
    for entry in manifest.load():
        if entry.learner_files:
            listed = kept.setdefault(entry.id, [])
            listed += [path for path in entry.learner_files if path not in listed]
    return kept


def file_config(root: Path) -> Config:
    """``root/nbgrader_config.py`` loaded as nbgrader loads it; an empty Config if there is none.

    Modules beside it (a late-penalty plugin, say) import as they do for nbgrader, which runs
    from the course folder: the folder is on the import path while its configuration is used.
    """
    path = root / CONFIG_FILE
    if not path.is_file():
        return Config()
    on_path(root)
    try:
        return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    except Exception as error:  # whatever the file raises: a syntax error, a failed import
        cause = error.__cause__ or error
        raise ConfigInvalid(f"{path} could not be loaded: {type(cause).__name__}: {cause}") \
            from None


def on_path(folder: Path) -> None:
    """Let ``folder``'s modules be imported, as from nbgrader's working folder."""
    if str(folder) not in sys.path:
        sys.path.append(str(folder))


def configured(config: Config, *names: str, default=None):
    """The first of ``names`` ("Section.key") the configuration sets, else ``default``."""
    for name in names:
        section, key = name.split(".")
        if section in config and key in config[section]:
            return config[section][key]
    return default


def _private_exchange() -> Path:
    """An exchange folder for NbGraderAPI, which checks for one at start-up.

    The course hands out and collects files itself, so it never uses nbgrader's exchange; an
    existing private folder only keeps NbGraderAPI from logging that the shared one is missing.
    """
    path = Path(tempfile.gettempdir()) / "docker-course-nbgrader-exchange"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def gradebook_url(root: Path, db_url: str | None = None, config: Config | None = None) -> str:
    """The gradebook in use: ``db_url`` if given, else nbgrader_config.py's
    ``CourseDirectory.db_url``, else SQLite's gradebook.db in the course folder, as nbgrader's."""
    config = file_config(root) if config is None else config
    return db_url or configured(config, "CourseDirectory.db_url") \
        or sqlite_url(root / "gradebook.db")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"
