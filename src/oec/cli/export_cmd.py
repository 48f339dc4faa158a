"""`oec export`: filtered rollouts -> loss-masked fine-tuning data in the student's format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, cast

import typer
from rich.table import Table

from oec.cli.common import console, err_console, fail, load_task_source, report_errors
from oec.cli.filter_cmd import FILTERED
from oec.collect.run_dir import TRAJECTORIES
from oec.agent.formats import ActionFormat
from oec.data.export import (
    EXPORT_FORMATS,
    ExportError,
    ExportFormat,
    build_records,
    count_turns,
    draw_mixture,
    infer_student_format,
    parse_mix,
    read_trajectories,
    write_export,
)


def run_student_format(run_dir: Path, trajectories: list, asked: str | None) -> str:
    """The format the training data is rendered in: the run's, recorded at collection (or seen in its steps).

    Asking for another one is an error: a student trained in one format and run in another is scored on
    what it was never taught. A run with no student (BC only) records the format the student was declared
    in with --student-format; without any record, text."""
    recorded = None
    config = run_dir / "config.json"
    if config.is_file():
        try:
            recorded = json.loads(config.read_text(encoding="utf-8")).get("student_format")
        except ValueError as exc:
            raise ExportError(f"{config}: not JSON ({exc})") from exc
    spoken = infer_student_format(trajectories)
    if recorded is not None and spoken is not None and recorded != spoken:
        raise ExportError(f"{config}: the run records student_format {recorded!r} but its student spoke {spoken}")
    known = recorded or spoken
    if asked is not None and known is not None and asked != known:
        raise ExportError(f"--student-format {asked}: the run's student speaks {known} ({config}); the training "
                          "data must be in the format the student is collected and evaluated in")
    return asked or known or "text"


def export_command(
    run_dir: Path = typer.Argument(..., help="run directory (reads filtered.jsonl written by `oec filter`)"),
    fmt: str = typer.Option(..., "--format", help="messages | openai | sharegpt"),
    out: Path = typer.Option(..., "--out", help="output JSONL file"),
    mix: Optional[str] = typer.Option(None, "--mix", help="records per source, e.g. oec=3000,bc=1000,on-policy=0"),
    seed: int = typer.Option(0, "--seed", help="seed of the mixture draw and the record order"),
    allow_short: bool = typer.Option(False, "--allow-short", help="take all a short source has instead of failing"),
    tasks_file: Optional[Path] = typer.Option(None, "--tasks", help="task file of the run; default the bundled suite"),
    student_format: Optional[str] = typer.Option(
        None, "--student-format", help="text | native; default: the run's (recorded at collection); "
                                       "another one is an error"),
    unfiltered: bool = typer.Option(False, "--unfiltered", help="export trajectories.jsonl without filtering"),
    train_student_turns: bool = typer.Option(False, "--train-student-turns",
                                             help="OEC rollouts: train the student's turns too (the unmasked ablation)"),
) -> None:
    """Render each kept rollout as the student sees it and flag which assistant turns are trained."""
    if fmt not in EXPORT_FORMATS:
        raise fail(f"--format {fmt}: expected one of {', '.join(EXPORT_FORMATS)}")
    if student_format not in (None, "text", "native"):
        raise fail(f"--student-format {student_format}: expected text or native")
    source_path = run_dir / (TRAJECTORIES if unfiltered else FILTERED)
    if not unfiltered and not source_path.exists():
        raise fail(f"{source_path} not found: run `oec filter {run_dir}` first (or pass --unfiltered)")
    try:
        requested_mix = parse_mix(mix) if mix is not None else None
        source = read_trajectories(source_path)
        if source.torn_tail:
            err_console.print(f"[yellow]the last line of {source_path} is incomplete; it was skipped[/]")
        chosen = cast(ActionFormat, run_student_format(run_dir, source.trajectories, student_format))
        loaded = load_task_source(tasks_file)
        report_errors(loaded)
        tasks = {t.instance_id: t for t in loaded.tasks}
        built = build_records(source.trajectories, tasks, chosen, train_student_turns)
        drawn = draw_mixture(built.records, requested_mix, seed, allow_short)
        written = write_export(drawn.records, cast(ExportFormat, fmt), out)
    except ExportError as exc:
        raise fail(str(exc)) from exc

    table = Table(title=f"export ({fmt}, student format {chosen})")
    for column in ("strategy", "available", "records", "trained turns", "masked turns", "format errors",
                   "nothing to train"):
        table.add_column(column, justify="right" if column != "strategy" else "left")
    counts = count_turns(drawn.records)
    for strategy in sorted(set(drawn.available) | set(drawn.requested) | set(built.untrainable)):
        c = counts.get(strategy)
        table.add_row(strategy, str(drawn.available.get(strategy, 0)), str(c.records if c else 0),
                      str(c.trained_turns if c else 0), str(c.masked_turns if c else 0),
                      str(c.format_error_turns if c else 0), str(built.untrainable.get(strategy, 0)))
    console.print(table)
    for strategy, (asked, have) in drawn.short.items():
        console.print(f"[yellow]{strategy}: asked {asked}, only {have} available; took all {have} (--allow-short)[/]")
    what = "examples (one per trained turn)" if fmt == "sharegpt" else "records"
    console.print(f"wrote {written.lines} {what} to {out}")
    if written.dataset_info is not None:
        console.print(f"wrote the dataset entry '{out.stem}' to {written.dataset_info}; "
                      "train with LLaMA-Factory's `mask_history: true`")
