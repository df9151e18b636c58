"""nbgrader preprocessors the course adds to the autograde pipeline, one per file."""

from .execute_parameterized import ExecuteParameterized
from .restore_deleted_cells import RestoreDeletedCells
from .save_judged_grades import SaveJudgedGrades
from .strip_hidden_tracebacks import StripHiddenTracebacks

__all__ = ["ExecuteParameterized", "RestoreDeletedCells", "SaveJudgedGrades",
           "StripHiddenTracebacks"]
