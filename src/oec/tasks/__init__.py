"""Tasks: the Task record, loaders with precise errors, and the bundled suite."""

from oec.tasks.model import Task

__all__ = ["Task"]
