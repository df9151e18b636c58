"""nbgrader preprocessors the course adds to the autograde pipeline, one per file."""

from .execute_parameterized import ExecuteParameterized
from .restore_deleted_cells import RestoreDeletedCells

__all__ = ["ExecuteParameterized", "RestoreDeletedCells"]
