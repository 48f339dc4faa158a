"""`oec view`: one self-contained HTML report of a run (summary, plots, every trajectory)."""

from __future__ import annotations

from pathlib import Path

import typer

from oec.cli.common import console, fail


def view_command(
    run_dir: Path = typer.Argument(..., help="a collect directory (trajectories.jsonl), an `oec run` "
                                                 "or an `oec experiment` directory"),
    out: Path | None = typer.Option(None, "--out", help="the HTML file to write (default: RUN_DIR/report.html)"),
    eval_dirs: list[Path] = typer.Option([], "--eval", help="evaluation directories to add (as `oec compare` takes)"),
    compare_dirs: list[Path] = typer.Option([], "--compare",
                                            help="other runs whose switch criteria are tabled beside this run's"),
    limit: int | None = typer.Option(None, "--limit", min=1,
                                        help="list only the first N trajectories (the summary still counts all)"),
) -> None:
    """Write a self-contained HTML report: open it in any browser, no network needed."""
    from oec.report import write_report
    from oec.report.experiment import is_experiment, write_experiment_page
    from oec.report.layout import LayoutError

    if is_experiment(run_dir):  # an `oec experiment` directory: the arms page
        console.print(f"wrote {write_experiment_page(run_dir, out)}")
        return
    try:
        path = write_report(run_dir, out, eval_dirs=list(eval_dirs), limit=limit,
                            compare_dirs=list(compare_dirs))
    except (LayoutError, FileNotFoundError, ValueError) as exc:  # ExportError is a ValueError
        raise fail(str(exc)) from exc
    console.print(f"wrote {path}")
