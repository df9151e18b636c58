"""nbgrader's SaveAutoGrades, with each judged grade cell scored by its judge's verdict.

nbgrader scores a code grade cell by its outputs (an error or stderr output: no points). Under
a judge the outputs are only for people to read: the score is the verdict the judge reached
(``resources["course_verdicts"]``, see ExecuteParameterized), and a grade cell with no verdict
(never reached, not run) scores nothing, whatever its outputs say.
"""

from __future__ import annotations

from nbgrader import utils
from nbgrader.preprocessors import SaveAutoGrades


class SaveJudgedGrades(SaveAutoGrades):
    def _add_score(self, cell, resources) -> None:
        verdicts = resources.get("course_verdicts")
        if verdicts is None or cell.cell_type != "code" or utils.is_solution(cell):
            super()._add_score(cell, resources)
            return
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"],
                                          self.notebook_id, self.assignment_id, self.student_id)
        verdict = verdicts.get(grade.name)
        grade.auto_score = verdict["score"] if verdict else 0.0
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
