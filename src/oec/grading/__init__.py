"""Grading: apply a patch in a fresh workspace, run the task's tests, decide resolved as SWE-bench does."""
