"""`oec demo`: the main job on the embedded default. Today: grade the bundled suite.

The collection, training and evaluation stages arrive in later releases; until
then the demo runs the part that exists and says so.
"""

from __future__ import annotations

from pathlib import Path

import typer

from oec.cli.common import console, load_task_source, repo_index
from oec.cli.grade import results_table, write_results
from oec.grading.batch import grade_many


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="where the demo writes its results"),
    jobs: int = typer.Option(2, "--jobs", "-j"),
) -> None:
    """Grade the bundled suite with gold patches (all must resolve) and empty ones (none may)."""
    console.rule("oec demo: grading the bundled suite")
    console.print("The pipeline stages after grading are not built yet; this demo runs grading, which is.")
    loaded = load_task_source(None)
    repos = repo_index(None)
    summary = {}
    for mode in ("gold", "empty"):
        pairs = [(t, t.patch if mode == "gold" else "") for t in loaded.tasks]
        results = grade_many(pairs, repos, jobs=jobs, console=console, description=f"grading {mode} patches")
        console.print(results_table(results, f"bundled suite · {mode} patches"))
        write_results(results, out / f"grade-{mode}.json")
        summary[mode] = sum(r.resolved for r in results)
    total = len(loaded.tasks)
    ok = summary["gold"] == total and summary["empty"] == 0
    console.print(f"gold resolved {summary['gold']}/{total}, empty resolved {summary['empty']}/{total}: "
                  + ("[green]as expected[/]" if ok else "[red]NOT as expected[/]"))
    console.print(f"results in {out}/")
    if not ok:
        raise typer.Exit(1)
