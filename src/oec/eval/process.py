"""What evaluation rollouts did, beside whether they resolved: the process metrics.

A small student learns the procedure (valid actions, editing the right file, running the tests, submitting)
long before it resolves held-out tasks, so these are printed beside every resolve rate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel
from rich.table import Table

from oec.collect.attempts import failed_to_run
from oec.collect.records import Trajectory
from oec.collect.run_dir import RunDir
from oec.grading.patch_files import files_touched
from oec.tasks.model import Task


class ProcessMetrics(BaseModel):
    rollouts: int = 0
    steps: int = 0
    valid_action_rate: float = 0.0  # steps whose reply held a valid action (no format error)
    submitted_rate: float = 0.0  # rollouts that ended by submitting
    edited_fix_file_rate: float = 0.0  # rollouts whose patch touches a file the gold fix touches
    ran_tests_rate: float = 0.0  # rollouts with a bash action that runs pytest


def _touched(patch: str) -> set[str]:
    try:
        return set(files_touched(patch)) if patch.strip() else set()
    except ValueError:  # a patch that cannot be read touches nothing we can name
        return set()


def _ran_tests(trajectory: Trajectory) -> bool:
    return any(s.action is not None and s.action.tool == "bash" and "pytest" in str(s.action.arguments.get("command"))
               for s in trajectory.steps)


def rollouts_that_ran(eval_dir: str | Path) -> list[Trajectory]:
    """The rollouts of an evaluation folder that ran: one that failed to run (oec's fault) says nothing of the model."""
    return [t for t in RunDir(Path(eval_dir)).read() if not failed_to_run(t)]


def process_metrics(trajectories: Iterable[Trajectory], tasks: Mapping[str, Task]) -> ProcessMetrics:
    items = list(trajectories)
    if not items:
        return ProcessMetrics()
    steps = [s for t in items for s in t.steps]
    gold = {i: _touched(t.fix_patch) for i, t in tasks.items()}
    n = len(items)
    return ProcessMetrics(
        rollouts=n, steps=len(steps),
        valid_action_rate=sum(s.format_error is None for s in steps) / len(steps) if steps else 0.0,
        submitted_rate=sum(t.exit_reason == "submitted" for t in items) / n,
        edited_fix_file_rate=sum(bool(_touched(t.patch) & gold.get(t.instance_id, set())) for t in items) / n,
        ran_tests_rate=sum(_ran_tests(t) for t in items) / n)


def process_table(eval_dirs: list[tuple[str, str | Path]], tasks: Mapping[str, Task]) -> Table:
    """One row per (label, evaluation directory): the process metrics of the rollouts that ran."""
    table = Table(title="process metrics (rollouts that ran)")
    for column in ("eval", "rollouts", "steps/rollout", "valid actions", "submitted", "edited the fix's file",
                   "ran tests"):
        table.add_column(column)
    for label, where in eval_dirs:
        m = process_metrics(rollouts_that_ran(where), tasks)
        table.add_row(label, str(m.rollouts), f"{m.steps / m.rollouts:.1f}" if m.rollouts else "-",
                      f"{m.valid_action_rate:.0%}", f"{m.submitted_rate:.0%}", f"{m.edited_fix_file_rate:.0%}",
                      f"{m.ran_tests_rate:.0%}")
    return table
