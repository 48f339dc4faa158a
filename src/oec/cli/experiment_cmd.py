"""`oec experiment CONFIG.toml`: every arm (base, bc, on-policy, oec and the ablations) trained and evaluated
on one held-out task set, with paired statistics; resumable arm by arm."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from oec.cli.common import console, fail


def experiment_command(
    config: Path = typer.Argument(..., help="experiment config (TOML)"),
    out: Optional[Path] = typer.Option(None, "--out", help="override [run] out"),
    samples: Optional[int] = typer.Option(None, "--samples", min=1,
                                          help="override [eval] samples (needs [eval] temperature > 0 when > 1)"),
) -> None:
    """Run the comparison; rerun the same command to resume. `oec view OUT` renders the experiment page."""
    from oec.experiment.config import ExperimentEval, load_experiment
    from oec.experiment.runner import run_experiment
    from oec.pipeline.config import ConfigError
    from oec.pipeline.run import PipelineError

    try:
        loaded = load_experiment(config)
        if samples is not None:
            loaded.eval = ExperimentEval.model_validate({**loaded.eval.model_dump(), "samples": samples})
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:
        raise fail(f"--samples {samples}: {exc}") from exc
    if out is not None:
        loaded.run.out = out
    console.rule(f"oec experiment {config} -> {loaded.run.out}")
    try:
        run_experiment(loaded, console)
    except PipelineError as exc:
        raise fail(str(exc)) from exc
    console.print(f"wrote {loaded.run.out / 'experiment.json'}; `oec view {loaded.run.out}` for the report")
