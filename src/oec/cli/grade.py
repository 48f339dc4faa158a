"""`oec grade`: grade gold, empty or given patches for a task file, as SWE-bench does."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from oec.cli.common import (choose_env_backend, console, fail, load_task_source, repo_index, report_errors,
                            warn_about_interpreters)
from oec.cli.execution import EnvOption, IsolationOption, ReposOption, check_isolation
from oec.grading.batch import grade_many
from oec.grading.grader import GradeResult
from oec.grading.predictions import (
    PredictionsError,
    load_patch_file,
    load_predictions,
    looks_like_predictions,
)
from oec.tasks.model import Task


def choose_patches(tasks: list[Task], patch: str) -> list[tuple[Task, str]]:
    """gold -> each task's gold patch; empty -> no change; a .json/.jsonl -> predictions; else one diff for all."""
    if patch == "gold":
        return [(t, t.fix_patch) for t in tasks]
    if patch == "empty":
        return [(t, "") for t in tasks]
    path = Path(patch)
    if not path.is_file():
        raise fail(f"--patch {patch}: expected 'gold', 'empty' or a patch/predictions file")
    if looks_like_predictions(path):
        try:
            predictions = load_predictions(path)
        except PredictionsError as exc:
            raise fail(str(exc)) from exc
        missing = [t.instance_id for t in tasks if t.instance_id not in predictions]
        if missing:
            console.print(f"[yellow]{len(missing)} task(s) have no prediction and are not graded[/]")
        return [(t, predictions[t.instance_id]) for t in tasks if t.instance_id in predictions]
    try:
        diff = load_patch_file(path)
    except PredictionsError as exc:
        raise fail(str(exc)) from exc
    return [(t, diff) for t in tasks]


def results_table(results: list[GradeResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("instance_id", "status", "F2P", "P2P", "seconds"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=48)
    for r in results:
        colour = "green" if r.resolved else "red"
        f2p = f"{len(r.fail_to_pass.success)}/{len(r.fail_to_pass.success) + len(r.fail_to_pass.failure)}"
        p2p = f"{len(r.pass_to_pass.success)}/{len(r.pass_to_pass.success) + len(r.pass_to_pass.failure)}"
        reason = (r.reason or "").splitlines()[0] if r.reason else ""
        table.add_row(r.instance_id, f"[{colour}]{r.status}[/]", f2p, p2p, f"{r.duration_s:.1f}", reason[:70])
    resolved = sum(r.resolved for r in results)
    table.caption = f"resolved {resolved}/{len(results)}"
    return table


def write_results(results: list[GradeResult], out: Path) -> None:
    """Write atomically so a killed run never leaves half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps([r.model_dump() for r in results], indent=2), encoding="utf-8")
    os.replace(tmp, out)


def grade_command(
    file: Optional[Path] = typer.Argument(None, help="task file (.json/.jsonl/.parquet); omit for the bundled suite"),
    repos: ReposOption = None,
    patch: str = typer.Option("gold", "--patch", help="gold | empty | a diff file | a predictions .json/.jsonl"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the results as a JSON list here"),
    jobs: int = typer.Option(min(4, os.cpu_count() or 1), "--jobs", "-j", help="tasks graded at once"),
    isolation: IsolationOption = "auto",
    env: EnvOption = "local",
) -> None:
    """Grade every task in FILE with the chosen patches and print a table."""
    check_isolation(isolation)
    env = choose_env_backend(env)
    loaded = load_task_source(file)
    report_errors(loaded)
    warn_about_interpreters(loaded.tasks, env)
    pairs = choose_patches(loaded.tasks, patch)
    results = grade_many(pairs, repo_index(repos), jobs=jobs, isolation=isolation, env=env,  # type: ignore[arg-type]
                         console=console, description=f"grading {patch}")
    console.print(results_table(results, f"{file or 'bundled suite'} · patch={patch}"))
    if out is not None:
        write_results(results, out)
        console.print(f"results written to {out}")
