"""Evaluate a model: student-only (on-policy) rollouts on tasks, graded; a summary with a Wilson interval."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console

from oec.collect.episode import EpisodeLimits
from oec.collect.executors import Executor
from oec.collect.interrupt import StopSignal
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir
from oec.collect.attempts import DEFAULT_MAX_ATTEMPTS, failed_to_run, not_run
from oec.collect.runner import DEFAULT_MAX_CONSECUTIVE_FAILURES, collect
from oec.env.repos import RepoIndex
from oec.env.sandbox import SandboxLimits
from oec.env.session import EnvBackend, Isolation
from oec.eval.stats import wilson_interval
from oec.models.portable import PortableProvider
from oec.models.registry import ModelOptions
from oec.tasks.model import Task

EVAL_SUMMARY = "eval.json"


class EvalSummary(BaseModel):
    model: str
    data_source: str | None = None
    label: str | None = None
    n: int
    resolved: int
    rate: float
    ci_low: float
    ci_high: float
    exit_reasons: dict[str, int] = Field(default_factory=dict)
    instances: list[str] = Field(default_factory=list)
    not_run: int = Field(default=0, description="rollouts that failed to run every attempt: not in n, not scored")
    not_run_reasons: dict[str, int] = Field(default_factory=dict)


def summarize(run_dir: RunDir, model: str, data_source: str | None, label: str | None) -> EvalSummary:
    """Recompute the summary from the trajectories on disk (so a resumed eval counts every rollout once).

    The rate and its interval are over the rollouts that ran; those that failed to run (attempts.jsonl)
    are counted beside them, never as unresolved. Legacy records of infrastructure failures (written to
    trajectories.jsonl before oec kept them apart) are moved to that count too."""
    records = list(run_dir.read())
    ran = [t for t in records if not failed_to_run(t)]
    missing = not_run(run_dir.path, {t.id for t in ran})
    reasons = Counter(a.exit_reason for a in missing.values())
    reasons.update(t.exit_reason for t in records if failed_to_run(t) and t.id not in missing)
    resolved = sum(t.resolved for t in ran)
    low, high = wilson_interval(resolved, len(ran))
    return EvalSummary(model=model, data_source=data_source, label=label, n=len(ran), resolved=resolved,
                       rate=resolved / len(ran) if ran else 0.0, ci_low=low, ci_high=high,
                       exit_reasons=dict(Counter(t.exit_reason for t in ran)),
                       instances=sorted({t.instance_id for t in ran}), not_run=sum(reasons.values()),
                       not_run_reasons=dict(reasons))


def write_summary(out: Path, summary: EvalSummary) -> None:
    tmp = out / (EVAL_SUMMARY + ".tmp")
    tmp.write_text(summary.model_dump_json(indent=2))
    os.replace(tmp, out / EVAL_SUMMARY)


async def evaluate(
    model: str,
    tasks: list[Task],
    repos: RepoIndex,
    out: Path,
    *,
    samples: int = 1,
    concurrency: int = 2,
    seed: int = 0,
    options: ModelOptions | None = None,
    limits: EpisodeLimits = EpisodeLimits(),
    command_timeout: float = 300.0,
    data_source: str | None = None,
    label: str | None = None,
    console: Console | None = None,
    executor: Executor | None = None,
    stop: StopSignal | None = None,
    env_backend: EnvBackend = "local",
    isolation: Isolation = "auto",
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
) -> EvalSummary:
    """Run the model alone on every task (`samples` times), grade, and write OUT/eval.json.

    A stopped evaluation raises `Interrupted` (or `CircuitOpen`, when its model server is gone) and writes
    no eval.json: a summary of part of the tasks would read as the model's score. Rollouts that failed to run
    every attempt are left out of the rate and counted as `not_run`.
    """
    run_dir = RunDir(out)
    config = {"kind": "eval", "model": model, "seed": seed, "max_calls": limits.max_calls_per_model,
              "max_steps": limits.max_steps}
    run_dir.prepare(config, ("model", "seed", "max_calls", "max_steps"))
    rollout = RolloutConfig(strategy="on-policy", student=PortableProvider(model, options or ModelOptions()),
                            expert=None, switch=None, repos=repos, seed=seed, limits=limits,
                            sandbox_limits=SandboxLimits(timeout_s=command_timeout), env_backend=env_backend,
                            isolation=isolation)
    await collect(tasks, [rollout], run_dir, samples=samples, concurrency=concurrency, console=console,
                  executor=executor, stop=stop, max_attempts=max_attempts,
                  max_consecutive_failures=max_consecutive_failures)
    summary = summarize(run_dir, model, data_source, label)
    write_summary(out, summary)
    return summary


def write_predictions(run_dir: Path, model: str, out: Path) -> int:
    """SWE-bench's predictions file from an evaluation: {instance_id, model_name_or_path, model_patch} per task,
    the first sample's patch, so the official harness can grade the same patches. Returns the rows written."""
    rows = {}
    for trajectory in sorted(RunDir(run_dir).read(), key=lambda t: t.sample_index):
        rows.setdefault(trajectory.instance_id, {"instance_id": trajectory.instance_id,
                                                 "model_name_or_path": model, "model_patch": trajectory.patch})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows.values()), encoding="utf-8")
    os.replace(tmp, out)
    return len(rows)


def load_summary(path: Path) -> EvalSummary:
    """An eval summary from a directory (or its eval.json); a clear error if it is not one."""
    file = path / EVAL_SUMMARY if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {EVAL_SUMMARY} (run `oec eval ... --out {path}` first)")
    try:
        return EvalSummary.model_validate(json.loads(file.read_text()))
    except ValueError as exc:
        raise ValueError(f"{file}: not an eval summary: {exc}") from exc
