"""The experiment config (TOML), validated by pydantic; errors name the file and the dotted field.

It reuses the pipeline's sections (run, models, collect, filter, export, train) so one set of knobs means
the same thing in `oec run` and `oec experiment`, and adds the arms, the data budget and the held-out tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from oec.pipeline.config import (CollectSection, ExportSection, FilterSection, ModelsSection,
                                 RunSection, TrainSection, _Section, read_config)
from oec.experiment.arms import ARMS, ArmName


class ExperimentTasks(_Section):
    train: Path | None = Field(default=None, description="tasks to collect on; none = the bundled suite")
    held_out: Path = Field(description="held-out tasks to evaluate on (e.g. from `oec synth-split --by function`)")
    repos: Path | None = None


class BudgetSection(_Section):
    mode: Literal["trajectories", "expert_calls"] = Field(
        default="trajectories", description="equal kept trajectories per trained arm, or equal expert calls "
                                            "(arms whose data costs no expert call take what they have); both "
                                            "are reported")
    max_trajectories: int | None = Field(default=None, ge=1, description="cap on kept trajectories per arm")


class ExperimentTrain(TrainSection):
    skip: bool = Field(default=False, description="no training: each trained arm is evaluated with its "
                                                  "`eval_models` entry (tests; checkpoints trained elsewhere)")


class ExperimentEval(_Section):
    samples: int = Field(default=1, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, description="the same for every arm; samples > 1 need > 0")
    concurrency: int = Field(default=2, ge=1)
    max_calls: int = Field(default=75, ge=1)
    max_format_errors: int | None = Field(default=None, ge=1, description="end a rollout after this many replies "
                                          "in a row with no valid action (none: never)")
    max_attempts: int = Field(default=3, ge=1, description="tries per rollout that fails to run (never scored)")
    bootstrap: int = Field(default=10_000, ge=100, description="paired bootstrap resamples")

    @model_validator(mode="after")
    def _independent_samples(self) -> "ExperimentEval":
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"samples = {self.samples} at temperature 0: greedy samples are identical, not "
                             "independent; set eval.temperature above 0 or samples = 1")
        return self


class ExperimentConfig(_Section):
    run: RunSection = RunSection(out=Path("runs/experiment"))
    tasks: ExperimentTasks
    arms: list[ArmName] = Field(default_factory=lambda: list(ARMS))
    budget: BudgetSection = BudgetSection()
    models: ModelsSection = ModelsSection()
    collect: CollectSection = CollectSection()
    filter: FilterSection = FilterSection()
    export: ExportSection = ExportSection()
    train: ExperimentTrain = ExperimentTrain()
    eval: ExperimentEval = ExperimentEval()
    eval_models: dict[str, str] = Field(default_factory=dict,
                                        description="arm -> model spec evaluated instead of its checkpoint")

    @model_validator(mode="after")
    def _arms_known(self) -> "ExperimentConfig":
        unknown = sorted(set(self.eval_models) - set(self.arms))
        if unknown:
            raise ValueError(f"eval_models names arm(s) not in arms: {', '.join(unknown)}")
        if self.train.skip:
            missing = [a for a in self.arms if ARMS[a].trained and a not in self.eval_models]
            if missing:
                raise ValueError(f"train.skip = true: give eval_models for the trained arm(s) {', '.join(missing)}")
        return self


def load_experiment(path: Path) -> ExperimentConfig:
    """Read and validate an experiment config; errors name the file and the dotted field. Relative paths
    in it (tasks, repos, `[run] out`) are relative to the config's folder."""
    config = read_config(path, ExperimentConfig)
    base = path.parent
    if "out" in config.run.model_fields_set and not config.run.out.is_absolute():
        config.run.out = base / config.run.out  # like the task files: beside the config, wherever it is run from
    for section, name in ((config.tasks, "train"), (config.tasks, "held_out"), (config.tasks, "repos")):
        value = getattr(section, name)
        if value is not None and not value.is_absolute():
            setattr(section, name, base / value)
    return config
