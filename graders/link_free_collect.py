"""nbgrader's exchange collect, copying students' folders without following symbolic links.

nbgrader's collect runs as the instructor and copies each submission with ``shutil.copytree``,
which copies what a link points to: a student who submits a link to a file of the
instructor's gets that file copied into the course. Here each submission is read as
``graders.folders`` reads one (links left out, size capped) and everything else is nbgrader's.
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

from .folders import read_folder, write_folder


class LinkFreeCollect(ExchangeCollect):
    """ExchangeCollect whose copy leaves links out and records, per student, what it left."""

    def init_src(self):
        super().init_src()
        #: student id -> what was left out of their submission, and why
        self.left_out: dict[str, list[str]] = {}
        #: the students whose submission was copied into submitted/ this time
        self.collected: list[str] = []

    def do_copy(self, src, dest, log=None):
        limit = 1000 * self.coursedir.max_dir_size  # nbgrader's own size rule, in kB
        files, left_out = read_folder(Path(src), ignore=tuple(self.coursedir.ignore),
                                      limit=limit)
        Path(dest).mkdir(parents=True, exist_ok=True)
        write_folder(Path(dest), files)
        student = Path(dest).parent.name
        self.collected.append(student)
        if left_out:
            self.left_out[student] = left_out
            self.log.warning("left out of %s's submission: %s", student, ", ".join(left_out))
