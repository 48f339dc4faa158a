"""`oec tasks validate|list`: check task files and see what they hold."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from oec.cli.common import console, load_task_source, repo_index, report_errors
from oec.env.repos import RepoIndex
from oec.tasks.model import Task

app = typer.Typer(help="Inspect and validate task files (JSON, JSONL, parquet).", no_args_is_help=True)


@app.command("validate")
def validate_command(
    file: Optional[Path] = typer.Argument(None, help="task file: .json, .jsonl or .parquet; omit for the bundled suite"),
    repos: Optional[Path] = typer.Option(
        None, "--repos", help="folder of repositories (<owner>__<name>): also check that no workspace leads back to "
                              "the fix, and say where the repository's own history holds it"),
    leaks: bool = typer.Option(True, "--leaks/--no-leaks", help="run the leak check where a task's repo is found"),
    strict: bool = typer.Option(False, "--strict", help="exit 1 also when only the source history holds a fix"),
) -> None:
    """Validate every row; print each bad row with its file, line and field. Exit 1 if any row is bad.

    With the repositories at hand (--repos, or the bundled suite's own), each task's fix is also looked for
    in what a workspace can read (exit 1 if found: never expected) and in its source repository's history
    (reported; oec's workspaces carry only the base commit, so rollouts cannot read it).
    """
    result = load_task_source(file)
    report_errors(result)
    name = file or "bundled suite"
    console.print(f"{name}: {len(result.tasks)} valid task(s), {len(result.errors)} error(s)", soft_wrap=True)
    failed = bool(result.errors)
    if leaks and result.tasks and (repos is not None or file is None):
        failed |= _report_leaks(result.tasks, repo_index(repos), strict=strict)
    if failed:
        raise typer.Exit(1)


def _report_leaks(tasks: list[Task], index: RepoIndex, *, strict: bool) -> bool:
    """Print the leak table; True when the command must fail."""
    from oec.env.leaks import check_leaks

    table = Table(title="where each task's fix can be read")
    for column in ("instance_id", "workspace", "source history"):
        table.add_column(column, overflow="fold")
    failed = False
    built_in_images = [t.instance_id for t in tasks if t.bug_shaped]
    with console.status("looking for each fix in git objects"):
        reports = [check_leaks(task, index) for task in tasks if not task.bug_shaped]
    for report in reports:
        if report.error:
            table.add_row(report.instance_id, f"[red]not checked: {report.error}[/]", "")
            failed = True
            continue
        workspace = "[red]LEAKS " + ", ".join(report.in_workspace) + "[/]" if report.in_workspace else "[green]clean[/]"
        history = ("[yellow]holds the fix: " + "; ".join(report.in_source) + "[/]" if report.in_source
                   else "[green]clean[/]")
        table.add_row(report.instance_id, workspace, history)
        failed |= bool(report.in_workspace) or (strict and bool(report.in_source))
    for instance_id in built_in_images:
        table.add_row(instance_id, "[green]its start is built in its image, one commit[/]", "n/a (a SWE-smith row)")
    console.print(table)
    leaking = sum(bool(r.in_source) for r in reports)
    if leaking:
        console.print(f"{leaking} task(s) have the fix in their source repository's history: any harness that "
                      "hands the agent that repository leaks it. oec's workspaces borrow only the base commit.",
                      soft_wrap=True)
    return failed


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
        table.add_row(task.instance_id, task.repo, (task.base_commit or 'bug: patch')[:10], str(len(task.FAIL_TO_PASS)),
                      str(len(task.PASS_TO_PASS)), first_line[:60])
    console.print(table)
    report_errors(result)
    if result.errors:
        raise typer.Exit(1)
