"""Running nbgrader's own applications from inside this process, configured in one place."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from traitlets.config import Config


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

    ``sections`` adds or overrides configuration classes, e.g. ``Execute={"timeout": 30}``.
    """
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = db_url
    config.CourseDirectory.course_id = "docker-course"
    config.Exchange.root = str(_private_exchange())
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


def _private_exchange() -> Path:
    """An exchange folder for NbGraderAPI, which checks for one at start-up.

    The course hands out and collects files itself, so it never uses nbgrader's exchange; an
    existing private folder only keeps NbGraderAPI from logging that the shared one is missing.
    """
    path = Path(tempfile.gettempdir()) / "docker-course-nbgrader-exchange"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"
