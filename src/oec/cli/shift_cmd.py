"""`oec shift`: covariate shift between student-only and expert-only rollouts, per turn index."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from oec.cli.common import console, fail


def _cell(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")


def shift_table(result: dict) -> Table:
    table = Table(title=f"covariate shift: {result['student_strategy']} vs {result['expert_strategy']} "
                        f"({result['tasks']} paired tasks)")
    for column in ("turn", "student", "expert", "Frechet [95% CI]", "KL [95% CI]"):
        table.add_column(column, justify="right" if column in ("turn", "student", "expert") else "left")
    for t in result["turns"]:
        table.add_row(str(t["turn"]), str(t["n_student"]), str(t["n_expert"]),
                      _cell(t["frechet"], t["frechet_ci"]), _cell(t["kl"], t["kl_ci"]))
    return table


def shift_command(
    run_dir: Path = typer.Argument(..., help="a collect directory (trajectories.jsonl) or an `oec run` directory"),
    out: Path | None = typer.Option(None, "--out", help="JSON to write (default: RUN_DIR/shift.json)"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="paired bootstrap replicates (0: no interval)"),
    seed: int = typer.Option(0, "--seed"),
    student_strategy: str = typer.Option("on-policy", "--student-strategy", help="the student-only rollouts"),
    expert_strategy: str = typer.Option("bc", "--expert-strategy", help="the expert-only rollouts"),
    content: str = typer.Option("action+observation", "--content",
                                help="what a turn's embedding reads: action+observation, or action"),
    min_rollouts: int = typer.Option(2, "--min-rollouts", min=1, help="rollouts a turn needs on each side"),
) -> None:
    """Embed each turn of both rollout sets (all-MiniLM-L6-v2, offline) and report the distance per turn index."""
    from oec.data.export import ExportError
    from oec.report.embedding import EmbeddingUnavailable, load_encoder
    from oec.report.layout import (
        SHIFT_FILE,
        LayoutError,
        load_trajectories,
        resolve_layout,
    )
    from oec.report.shift import ShiftError, analyze_shift, paired_tasks

    if content not in ("action+observation", "action"):
        raise fail(f"--content {content!r}: use action+observation or action")
    try:
        layout = resolve_layout(run_dir)
        trajectories, _ = load_trajectories(layout)
        paired_tasks(trajectories, student_strategy, expert_strategy)  # say what is missing before loading a model
        result = analyze_shift(trajectories, load_encoder(), student_strategy=student_strategy,
                               expert_strategy=expert_strategy, content=content,  # type: ignore[arg-type]
                               bootstrap=bootstrap, seed=seed, min_rollouts=min_rollouts)
    except (LayoutError, ExportError, ShiftError, EmbeddingUnavailable) as exc:
        raise fail(str(exc)) from exc
    target = out if out is not None else layout.root / SHIFT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    console.print(shift_table(result))
    console.print(f"wrote {target} (`oec view {run_dir}` plots it)")
