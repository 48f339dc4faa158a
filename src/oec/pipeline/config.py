"""The pipeline config (TOML), validated by pydantic so a typo is an error that names the file and field."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    out: Path = Path("runs/demo")
    seed: int = 0
    env: Literal["local", "docker"] = Field(
        default="local", description="where rollouts run and are graded: local sandbox, or each task's image")


class TasksSection(_Section):
    file: Path | None = Field(default=None, description="task file; none = the bundled suite")
    repos: Path | None = None
    eval_fraction: float = Field(default=0.34, ge=0.0, lt=1.0,
                                 description="share of tasks held out for evaluation (split by instance id hash)")
    limit: int | None = Field(default=None, ge=1, description="use at most this many tasks (train + eval)")


class ModelsSection(_Section):
    student: str = "hf:smollm2-135m"
    expert: str = "oracle"
    student_base_url: str | None = None
    expert_base_url: str | None = None
    max_tokens: int = Field(default=512, ge=1, description="tokens per reply, both roles unless set per role")
    student_max_tokens: int | None = Field(default=None, ge=1)
    expert_max_tokens: int | None = Field(default=None, ge=1)
    student_temperature: float | None = Field(default=None, ge=0.0, description="none: greedy (0)")
    expert_temperature: float | None = Field(default=None, ge=0.0, description="none: 0; anthropic takes none")
    student_format: Literal["auto", "text", "native"] = Field(
        default="auto", description="how the student writes actions, in collection, training data and eval")
    expert_format: Literal["auto", "text", "native"] = "auto"


class CollectSection(_Section):
    strategies: list[Literal["bc", "on-policy", "oec"]] = ["bc", "on-policy", "oec"]
    switch: str = "uniform:0-30"
    samples: int = Field(default=1, ge=1)
    concurrency: int = Field(default=4, ge=1)
    max_calls: int = Field(default=75, ge=1)
    max_student_calls: int | None = Field(default=None, ge=1)
    max_steps: int = Field(default=150, ge=1)
    max_observation_chars: int = Field(default=10_000, ge=200)
    max_format_errors: int | None = Field(default=None, ge=1, description="end a rollout no expert takes over "
                                          "after this many replies in a row with no valid action (none: never)")
    command_timeout: float = 300.0


class FilterSection(_Section):
    resolved: bool = True
    max_repeat: int = Field(default=3, ge=0)
    max_steps: int | None = None
    exit_reasons: list[str] | None = None
    reward_hack: bool = Field(default=True, description="drop rollouts whose patch touches tests or test infrastructure")


class ExportSection(_Section):
    format: Literal["messages", "openai", "sharegpt"] = "messages"
    mix: dict[str, int] | None = Field(default=None, description="records per strategy; none = all")
    allow_short: bool = True


class TrainSection(_Section):
    lora: bool = True
    epochs: float = 1.0
    lr: float | None = Field(default=None, gt=0, description="none = per mode: 2e-4 with LoRA, 1e-5 full")
    max_length: int | None = Field(default=None, ge=1, description="tokens per example; none = the model's context")
    long_records: Literal["window", "drop"] = Field(
        default="window", description="records longer than max_length: cut at turn boundaries, or left out")
    batch_size: int = 1
    grad_accum: int = 4
    max_steps: int | None = None
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="auto: bf16 on GPUs that support it, fp16 on other CUDA GPUs, fp32 on CPU")
    gradient_checkpointing: bool = True
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    warmup: float = Field(default=0.0, ge=0.0, description="warmup steps if >= 1, else a fraction of the steps")
    lr_scheduler: str = "linear"
    save_steps: int | None = Field(default=None, ge=1, description="checkpoint into checkpoint.work/ every N steps")
    resume: bool = Field(default=False, description="continue an interrupted training from its latest checkpoint")


class EvalSection(_Section):
    samples: int = Field(default=1, ge=1)
    concurrency: int = Field(default=2, ge=1)
    max_calls: int = Field(default=75, ge=1)
    max_format_errors: int | None = Field(default=None, ge=1, description="end a rollout after this many replies "
                                          "in a row with no valid action (none: never)")
    max_tokens: int | None = Field(default=None, ge=1, description="tokens per student reply in evaluation; "
                                                                  "none = the student's in [models]")
    base: bool = Field(default=True, description="also evaluate the untrained student, beside the trained one")


class PipelineConfig(_Section):
    run: RunSection = RunSection()
    tasks: TasksSection = TasksSection()
    models: ModelsSection = ModelsSection()
    collect: CollectSection = CollectSection()
    filter: FilterSection = FilterSection()
    export: ExportSection = ExportSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()


class ConfigError(ValueError):
    pass


M = TypeVar("M", bound=BaseModel)


def read_config(path: Path, model: type[M]) -> M:
    """Read a TOML file into `model`; errors name the file and the dotted field (shared by `oec run` and
    `oec experiment`)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(str(p) for p in e['loc']) or '(top)'}': {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def load_config(path: Path) -> PipelineConfig:
    """Read and validate a pipeline config (see `read_config`)."""
    return read_config(path, PipelineConfig)
