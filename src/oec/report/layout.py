"""Where a run's records live, whichever kind of directory the user points at.

`oec view` and `oec shift` take either a collect directory (trajectories.jsonl
inside, as `oec collect --out` writes it) or a whole `oec run` directory
(RUN/collect/..., RUN/eval/<label>/eval.json). Finding the files in one place
keeps both commands agreeing on what "the run" is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oec.collect.records import Trajectory
from oec.collect.run_dir import CONFIG, TRAJECTORIES
from oec.data.export import read_trajectories
from oec.eval.evaluate import EVAL_SUMMARY, EvalSummary, load_summary

FILTER_REPORT = "filter_report.json"  # written by `oec filter` (oec.cli.filter_cmd)
SHIFT_FILE = "shift.json"  # written by `oec shift`
REPORT_FILE = "report.html"


class LayoutError(ValueError):
    """RUN_DIR holds neither a collect directory nor an `oec run` directory."""


@dataclass
class RunLayout:
    root: Path  # what the user named
    collect: Path  # the folder holding trajectories.jsonl
    eval_dirs: list[Path] = field(default_factory=list)

    @property
    def trajectories(self) -> Path:
        return self.collect / TRAJECTORIES

    @property
    def filter_report(self) -> Path:
        return self.collect / FILTER_REPORT

    @property
    def shift_file(self) -> Path | None:
        """shift.json next to the run (root first, then the collect folder), if `oec shift` wrote one."""
        for folder in (self.root, self.collect):
            if (folder / SHIFT_FILE).is_file():
                return folder / SHIFT_FILE
        return None

    def config(self) -> dict[str, Any]:
        file = self.collect / CONFIG
        try:
            return json.loads(file.read_text()) if file.is_file() else {}
        except ValueError:
            return {}


def resolve_layout(run_dir: Path, extra_eval: list[Path] | None = None) -> RunLayout:
    """The layout of RUN_DIR; a clear error when it holds no trajectories."""
    if (run_dir / TRAJECTORIES).is_file():
        layout = RunLayout(run_dir, run_dir)
    elif (run_dir / "collect" / TRAJECTORIES).is_file():
        layout = RunLayout(run_dir, run_dir / "collect")
    else:
        raise LayoutError(f"{run_dir}: no {TRAJECTORIES} here or in {run_dir / 'collect'} "
                          "(point at an `oec collect --out` folder or an `oec run` folder)")
    eval_root = run_dir / "eval"
    if eval_root.is_dir():
        layout.eval_dirs.extend(sorted(p.parent for p in eval_root.glob(f"*/{EVAL_SUMMARY}")))
    for extra in extra_eval or []:
        if extra not in layout.eval_dirs:
            layout.eval_dirs.append(extra)
    return layout


def load_trajectories(layout: RunLayout) -> tuple[list[Trajectory], bool]:
    """The run's rollouts, and whether a last line still being written was skipped (a run in progress)."""
    source = read_trajectories(layout.trajectories)
    return source.trajectories, source.torn_tail


def load_evaluations(layout: RunLayout) -> list[tuple[str, EvalSummary]]:
    """Every evaluation summary of the run, labelled by its own label or its folder name."""
    out = []
    for folder in layout.eval_dirs:
        summary = load_summary(folder)  # FileNotFoundError/ValueError with the path in the message
        out.append((summary.label or folder.name, summary))
    return out
