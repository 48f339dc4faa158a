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
    held_out: Optional[Path] = typer.Option(None, "--held-out", help="override [tasks] held_out: evaluate on a "
                                            "validation split while tuning, the held-out one for the report"),
    arms: Optional[str] = typer.Option(None, "--arms", help="override arms (comma-separated), e.g. a quick "
                                       "base,bc,oec run"),
) -> None:
    """Run the comparison; rerun the same command to resume. `oec view OUT` renders the experiment page."""
    from oec.experiment.config import ExperimentEval, load_experiment
    from oec.experiment.runner import run_experiment
    from oec.pipeline.config import ConfigError
    from oec.pipeline.run import PipelineError

    try:
        loaded = load_experiment(config)
        if arms is not None:
            chosen = [a.strip() for a in arms.split(",") if a.strip()]
            loaded = type(loaded).model_validate({
                **loaded.model_dump(), "arms": chosen,
                "eval_models": {k: v for k, v in loaded.eval_models.items() if k in chosen}})
        if samples is not None:
            loaded.eval = ExperimentEval.model_validate({**loaded.eval.model_dump(), "samples": samples})
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:
        raise fail(f"--samples {samples} / --arms {arms}: {exc}") from exc
    if out is not None:
        loaded.run.out = out
    if held_out is not None:
        loaded.tasks.held_out = held_out
    console.rule(f"oec experiment {config} -> {loaded.run.out}")
    try:
        run_experiment(loaded, console)
    except PipelineError as exc:
        raise fail(str(exc)) from exc
    console.print(f"wrote {loaded.run.out / 'experiment.json'}; `oec view {loaded.run.out}` for the report")
