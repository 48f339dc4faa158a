"""`oec filter`: keep the rollouts worth training on; write RUN_DIR/filtered.jsonl and filter_report.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from oec.cli.common import console, err_console, fail
from oec.collect.run_dir import TRAJECTORIES
from oec.data.export import ExportError, read_trajectories, write_jsonl_atomic, write_text_atomic
from oec.collect.attempts import not_run
from oec.data.filters import (Filter, FilterReport, apply_filters, exit_reasons, max_steps, ran, repetition,
                              resolved, reward_hack)

FILTERED = "filtered.jsonl"
FILTER_REPORT = "filter_report.json"


def build_filters(keep_resolved: bool, max_repeat: int, steps: int | None, reasons: str | None,
                  drop_reward_hacks: bool = True, repeat_trained_only: bool = False) -> list[Filter]:
    """The rules in the order they are charged: failed_to_run, resolved, reward_hack, repetition, max_steps,
    exit_reason. A rollout that failed to run is always dropped, under that name (never as unresolved)."""
    rules: list[Filter] = [ran()]
    if keep_resolved:
        rules.append(resolved())
    if drop_reward_hacks:
        rules.append(reward_hack())
    if max_repeat:
        rules.append(repetition(max_repeat, trained_only=repeat_trained_only))
    if steps is not None:
        rules.append(max_steps(steps))
    if reasons is not None:
        names = [r.strip() for r in reasons.split(",") if r.strip()]
        rules.append(exit_reasons(names))
    return rules


def report_table(report: FilterReport) -> Table:
    strategies = sorted(report.total_per_strategy)
    table = Table(title="filter")
    table.add_column("rule")
    for strategy in strategies:
        table.add_column(strategy, justify="right")
    table.add_column("all", justify="right")
    table.add_row("rollouts", *(str(report.total_per_strategy[s]) for s in strategies), str(report.total))
    per_strategy = report.dropped_per_strategy
    per_reason = report.dropped_per_reason
    for rule, count in report.dropped.items():
        table.add_row(f"dropped: {rule}", *(str(per_strategy[rule].get(s, 0)) for s in strategies), str(count))
        if rule == "reward_hack":
            for kind, n in sorted(per_reason[rule].items()):
                counts = [sum(1 for d in report.drops if d.rule == rule and d.strategy == s
                              and d.reason.split(":", 1)[0].strip() == kind) for s in strategies]
                table.add_row(f"  {kind}", *(str(c) for c in counts), str(n))
    kept = report.kept_per_strategy
    table.add_row("[bold]kept[/]", *(f"[bold]{kept[s]}[/]" for s in strategies), f"[bold]{len(report.kept)}[/]")
    return table


def filter_command(
    run_dir: Path = typer.Argument(..., help="run directory holding trajectories.jsonl"),
    keep_resolved: bool = typer.Option(True, "--resolved/--no-resolved", help="keep resolved rollouts only"),
    max_repeat: int = typer.Option(3, "--max-repeat", min=0,
                                   help="drop a rollout with the same action N times in a row or the same "
                                        "(action, observation) N times; 0 disables"),
    steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="drop rollouts with more steps"),
    reasons: Optional[str] = typer.Option(None, "--exit-reasons", help="keep only these exit reasons, e.g. submitted"),
    drop_reward_hacks: bool = typer.Option(
        True, "--reward-hack/--no-reward-hack",
        help="drop rollouts whose patch touches tests or test infrastructure (conftest.py, pytest config, .git, "
             "compiled code, modules shadowing pytest), counted per reason"),
) -> None:
    """Filter a run's rollouts; each dropped rollout is charged to the first rule that drops it."""
    if max_repeat == 1:
        raise fail("--max-repeat 1 would drop every rollout; use 2 or more, or 0 to disable")
    try:
        rules = build_filters(keep_resolved, max_repeat, steps, reasons, drop_reward_hacks)
        source = read_trajectories(run_dir / TRAJECTORIES)
    except (ExportError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if source.torn_tail:
        err_console.print(f"[yellow]the last line of {run_dir / TRAJECTORIES} is incomplete (a run still writing?); "
                          "it was skipped[/]")
    report = apply_filters(source.trajectories, rules)
    write_jsonl_atomic(run_dir / FILTERED, (t.model_dump_json() for t in report.kept))
    write_text_atomic(run_dir / FILTER_REPORT, json.dumps(report.to_json(), indent=2) + "\n")
    console.print(report_table(report))
    missing = not_run(run_dir, {t.id for t in source.trajectories})
    if missing:
        console.print(f"[yellow]{len(missing)} rollout(s) failed to run and are not in {TRAJECTORIES} (see "
                      f"attempts.jsonl): rerun `oec collect` with the same options to retry them[/]")
    console.print(f"wrote {run_dir / FILTERED} ({len(report.kept)} rollouts) and {run_dir / FILTER_REPORT}")
