"""`oec eval` (student-only rollouts, graded) and `oec compare` (one table across evaluations)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from oec.cli.common import console, fail, load_task_source, report_errors, repo_index
from oec.cli.execution import (DrainOption, ExecutorOption, GradingSlotsOption, RayAddressOption, check_executor,
                               run_rollouts)
from oec.collect.episode import Limits
from oec.collect.run_dir import RunDirError
from oec.eval.evaluate import EvalSummary, evaluate, load_summary
from oec.models.registry import ModelOptions


def comparison_table(summaries: list[tuple[str, EvalSummary]]) -> Table:
    table = Table(title="evaluations")
    for column in ("eval", "model", "data source", "n", "resolved", "rate", "95% interval"):
        table.add_column(column, overflow="fold")
    for where, s in summaries:
        table.add_row(s.label or where, s.model, s.data_source or "-", str(s.n), str(s.resolved),
                      f"{s.rate:.1%}", f"[{s.ci_low:.1%}, {s.ci_high:.1%}]")
    return table


def eval_command(
    model: str = typer.Option(..., "--model", help="BACKEND:MODEL to evaluate, e.g. hf:runs/demo/checkpoint"),
    tasks_file: Optional[Path] = typer.Option(None, "--tasks", help="held-out task file; omit for the bundled suite"),
    out: Path = typer.Option(..., "--out", help="evaluation directory (rerun to resume)"),
    samples: int = typer.Option(1, "--samples", min=1),
    concurrency: int = typer.Option(2, "--concurrency", min=1),
    seed: int = typer.Option(0, "--seed"),
    repos: Optional[Path] = typer.Option(None, "--repos"),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="for openai:NAME models"),
    max_calls: int = typer.Option(75, "--max-calls"),
    max_tokens: int = typer.Option(512, "--max-tokens"),
    data_source: Optional[str] = typer.Option(None, "--data-source", help="what the model was trained on (for tables)"),
    label: Optional[str] = typer.Option(None, "--label"),
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    grading_slots: GradingSlotsOption = None,
    drain: DrainOption = False,
) -> None:
    """Run MODEL alone on every task, grade each rollout, report the resolve rate with a 95% Wilson interval."""
    check_executor(executor, ray_address)
    loaded = load_task_source(tasks_file)
    report_errors(loaded)
    if not loaded.tasks:
        raise fail("no valid tasks to evaluate")
    try:
        index = repo_index(repos)
        summary = run_rollouts(
            lambda chosen, stop: evaluate(
                model, loaded.tasks, index, out, samples=samples, concurrency=concurrency, seed=seed,
                options=ModelOptions(base_url=base_url, max_tokens=max_tokens, seed=seed, max_concurrency=concurrency),
                limits=Limits(max_calls_per_model=max_calls), data_source=data_source, label=label,
                console=console, executor=chosen, stop=stop),
            executor=executor, concurrency=concurrency, ray_address=ray_address, drain=drain,
            grading_slots=grading_slots)
    except (RunDirError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(comparison_table([(str(out), summary)]))


def compare_command(dirs: list[Path] = typer.Argument(..., help="evaluation directories")) -> None:
    """One table across evaluations: model, data source, n, resolved, rate, interval."""
    summaries = []
    for d in dirs:
        try:
            summaries.append((str(d), load_summary(d)))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from exc
    console.print(comparison_table(summaries))
