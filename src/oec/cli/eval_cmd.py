"""`oec eval` (student-only rollouts, graded) and `oec compare` (one table across evaluations)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from oec.cli.common import console, fail, repo_index
from oec.cli.execution import (EnvOption, IsolationOption, ReposOption, RunOptions, preflight_or_fail, rollout_setup,
                               run_rollouts, with_run_options)
from oec.models.portable import PortableProvider
from oec.cli.collect import role_options
from oec.collect.episode import EpisodeLimits
from oec.collect.run_dir import RunDirError
from oec.eval.process import process_table
from oec.eval.evaluate import EvalSummary, evaluate, load_summary, write_predictions


def comparison_table(summaries: list[tuple[str, EvalSummary]]) -> Table:
    """One row per evaluation: the rate over the rollouts that ran, and beside it how many did not."""
    table = Table(title="evaluations")
    for column in ("eval", "model", "data source", "n", "resolved", "rate", "95% interval", "failed to run"):
        table.add_column(column, overflow="fold")
    for where, s in summaries:
        table.add_row(s.label or where, s.model, s.data_source or "-", str(s.n), str(s.resolved),
                      f"{s.rate:.1%}", f"[{s.ci_low:.1%}, {s.ci_high:.1%}]",
                      str(s.not_run) + (f" ({', '.join(f'{k} {v}' for k, v in s.not_run_reasons.items())})"
                                        if s.not_run else ""))
    return table


@with_run_options
def eval_command(
    model: str = typer.Option(..., "--model", help="BACKEND:MODEL to evaluate, e.g. hf:runs/demo/checkpoint"),
    tasks_file: Optional[Path] = typer.Option(None, "--tasks", help="held-out task file; omit for the bundled suite"),
    out: Path = typer.Option(..., "--out", help="evaluation directory (rerun to resume)"),
    samples: int = typer.Option(1, "--samples", min=1),
    concurrency: int = typer.Option(2, "--concurrency", min=1),
    seed: int = typer.Option(0, "--seed"),
    repos: ReposOption = None,
    base_url: Optional[str] = typer.Option(None, "--base-url", help="for openai:NAME models"),
    max_calls: int = typer.Option(75, "--max-calls"),
    max_format_errors: Optional[int] = typer.Option(
        None, "--max-format-errors", min=1, help="end a rollout after this many replies in a row with no valid action"),
    max_tokens: int = typer.Option(512, "--max-tokens"),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0,
                                                help="sampling temperature (default: 0, greedy)"),
    fmt: str = typer.Option("auto", "--format", help="auto | text | native: how the model writes actions; auto "
                                                     "takes a trained checkpoint's recorded format"),
    data_source: Optional[str] = typer.Option(None, "--data-source", help="what the model was trained on (for tables)"),
    label: Optional[str] = typer.Option(None, "--label"),
    env: EnvOption = "local",
    isolation: IsolationOption = "auto",
    predictions_out: Optional[Path] = typer.Option(
        None, "--predictions-out", help="also write SWE-bench's predictions file (JSONL), for the official harness"),
    run: RunOptions = RunOptions(),
) -> None:
    """Run MODEL alone on every task, grade each rollout, report the resolve rate with a 95% Wilson interval."""
    tasks, env = rollout_setup(tasks_file, env, isolation, run, "evaluate")
    try:
        options = role_options("model", base_url=base_url, max_tokens=max_tokens, temperature=temperature, fmt=fmt,
                               seed=seed, concurrency=concurrency)
        if run.preflight:
            preflight_or_fail({"model": PortableProvider(model, options)}, tasks[0])
        index = repo_index(repos)
        summary = run_rollouts(
            lambda chosen, stop: evaluate(
                model, tasks, index, out, samples=samples, concurrency=concurrency, seed=seed,
                options=options, max_attempts=run.max_attempts, max_consecutive_failures=run.max_consecutive_failures,
                limits=EpisodeLimits(max_calls_per_model=max_calls, max_format_errors=max_format_errors),
                data_source=data_source, label=label,
                console=console, executor=chosen, stop=stop, env_backend=env,  # type: ignore[arg-type]
                isolation=isolation),  # type: ignore[arg-type]
            run, concurrency=concurrency)
    except (RunDirError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(comparison_table([(str(out), summary)]))
    console.print(process_table([(summary.label or str(out), str(out))], {t.instance_id: t for t in tasks}))
    if predictions_out is not None:
        written = write_predictions(out, model, predictions_out)
        console.print(f"wrote {written} predictions to {predictions_out} (SWE-bench's format; the first sample "
                      "of each task)")


def compare_command(dirs: list[Path] = typer.Argument(..., help="evaluation directories")) -> None:
    """One table across evaluations: model, data source, n, resolved, rate, interval."""
    summaries = []
    for d in dirs:
        try:
            summaries.append((str(d), load_summary(d)))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from exc
    console.print(comparison_table(summaries))
