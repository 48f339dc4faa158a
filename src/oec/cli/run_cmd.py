"""`oec run CONFIG.toml`: the whole method, stage by stage, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oec.cli.common import console, fail
from oec.pipeline.config import DEFAULT_CONFIG, ConfigError, load_config


def run_command(
    config: Optional[Path] = typer.Argument(None, help="pipeline config (TOML); omit for the embedded default"),
    out: Optional[Path] = typer.Option(None, "--out", help="override [run] out"),
) -> None:
    """collect -> filter -> export -> train -> eval; each stage is skipped when its output is current."""
    from oec.pipeline.run import PipelineError, run_pipeline

    try:
        loaded = load_config(config or DEFAULT_CONFIG)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    if out is not None:
        loaded.run.out = out
    console.rule(f"oec run {config or 'default'} -> {loaded.run.out}")
    try:
        run_pipeline(loaded, console)
    except PipelineError as exc:
        raise fail(str(exc)) from exc
