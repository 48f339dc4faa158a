"""`oec tasks validate|list`: check task files and see what they hold."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from oec.cli.common import console, load_task_source, report_errors

app = typer.Typer(help="Inspect and validate task files (JSON, JSONL, parquet).", no_args_is_help=True)


@app.command("validate")
def validate_command(file: Path = typer.Argument(..., help="task file: .json, .jsonl or .parquet")) -> None:
    """Validate every row; print each bad row with its file, line and field. Exit 1 if any row is bad."""
    result = load_task_source(file)
    report_errors(result)
    console.print(f"{file}: {len(result.tasks)} valid task(s), {len(result.errors)} error(s)", soft_wrap=True)
    if result.errors:
        raise typer.Exit(1)


@app.command("list")
def list_command(
    file: Optional[Path] = typer.Argument(None, help="task file; omit for the bundled suite"),
) -> None:
    """List the tasks of FILE (or of the bundled suite)."""
    result = load_task_source(file)
    table = Table(title=str(file) if file else "bundled suite")
    for column in ("instance_id", "repo", "base_commit", "F2P", "P2P", "problem"):
        table.add_column(column, overflow="fold" if column != "problem" else "ellipsis", no_wrap=column == "problem")
    for task in result.tasks:
        first_line = task.problem_statement.strip().splitlines()[0] if task.problem_statement.strip() else ""
        table.add_row(task.instance_id, task.repo, task.base_commit[:10], str(len(task.FAIL_TO_PASS)),
                      str(len(task.PASS_TO_PASS)), first_line[:60])
    console.print(table)
    report_errors(result)
    if result.errors:
        raise typer.Exit(1)
