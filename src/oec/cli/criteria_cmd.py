"""`oec criteria RUN_DIR [RUN_DIR...]`: switch criteria side by side (one run directory per criterion).

Each run directory becomes a row labelled with its name; a directory that holds several strategies
(e.g. oec and bc) gives a row per strategy, labelled NAME/STRATEGY, so a pure-expert baseline is never
averaged into a switch criterion.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from oec.cli.common import console, err_console, fail
from oec.collect.records import Trajectory
from oec.collect.run_dir import TRAJECTORIES


def _labelled(run_dirs: list[Path]) -> dict[str, list[Trajectory]]:
    from oec.data.export import ExportError, read_trajectories

    groups: dict[str, list[Trajectory]] = {}
    for run_dir in run_dirs:
        try:
            source = read_trajectories(run_dir / TRAJECTORIES)
        except ExportError as exc:
            raise fail(str(exc)) from exc
        if source.torn_tail:
            err_console.print(f"[yellow]the last line of {run_dir / TRAJECTORIES} is incomplete (still writing?); "
                              "it was skipped[/]")
        by_strategy: dict[str, list[Trajectory]] = {}
        for t in source.trajectories:
            by_strategy.setdefault(t.strategy, []).append(t)
        name = run_dir.name or str(run_dir)
        if len(by_strategy) <= 1:
            label = name if name not in groups else str(run_dir)
            groups[label] = source.trajectories
        else:
            for strategy, items in sorted(by_strategy.items()):
                groups[f"{name}/{strategy}"] = items
    return groups


def criteria_command(
    run_dirs: list[Path] = typer.Argument(..., help="run directories (trajectories.jsonl), one per criterion"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the rows as JSON to this file"),
) -> None:
    """Compare switch criteria: switch steps, expert calls per rollout, resolve rate, kept rollouts per expert call."""
    from rich.console import Console

    from oec.report.criteria import compare_criteria, criteria_table

    rows = compare_criteria(_labelled(run_dirs))
    wide = console if console.is_terminal else Console(width=160)  # a pipe or a file gets the table unwrapped
    wide.print(criteria_table(rows))
    console.print("kept: rollouts passing `oec filter`'s defaults (resolved, repetition 3); "
                  "expert calls include divergence-judge calls")
    if json_out is not None:
        json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        console.print(f"wrote {json_out}")
