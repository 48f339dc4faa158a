"""One rollout end to end: environment up, episode, patch, grade, record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from oec.collect.episode import Actor, Episode, Limits
from oec.collect.records import Trajectory, trajectory_id
from oec.collect.schedules import Strategy, SwitchSampler
from oec.collect.seeding import derive_seed, rollout_rng
from oec.env.repos import RepoIndex
from oec.env.sandbox import Limits as SandboxLimits
from oec.env.session import EnvSession, Isolation
from oec.grading.grader import grade
from oec.models.registry import ModelProvider
from oec.tasks.model import Task


@dataclass(frozen=True)
class RolloutConfig:
    """Everything a rollout needs besides the task and its index; shared by all rollouts of a run."""

    strategy: Strategy
    student: ModelProvider | None
    expert: ModelProvider | None
    switch: SwitchSampler | None
    repos: RepoIndex
    seed: int = 0
    limits: Limits = Limits()
    sandbox_limits: SandboxLimits = SandboxLimits()
    isolation: Isolation = "auto"
    work_root: Path | None = None
    grade: bool = True


def _actors(config: RolloutConfig, task: Task) -> tuple[Actor | None, Actor | None]:
    student = Actor("student", config.student.spec, config.student.for_task(task)) if config.student else None
    expert = Actor("expert", config.expert.spec, config.expert.for_task(task)) if config.expert else None
    if config.strategy == "bc":
        return None, expert
    if config.strategy == "on-policy":
        return student, None
    return student, expert


async def run_rollout(task: Task, sample_index: int, config: RolloutConfig) -> Trajectory:
    """Run, grade and record one rollout; errors of the environment become the exit reason, not a crash."""
    started = time.monotonic()
    seed = derive_seed(config.seed, task.instance_id, config.strategy, sample_index)
    student, expert = _actors(config, task)
    switch = config.switch if config.strategy == "oec" else None
    planned = switch.plan(rollout_rng(config.seed, task.instance_id, config.strategy, sample_index)) if switch else None
    episode = Episode(task, student, expert, switch, planned, config.limits)
    record = Trajectory(
        id=trajectory_id(task.instance_id, config.strategy, sample_index), instance_id=task.instance_id,
        strategy=config.strategy, sample_index=sample_index, run_seed=config.seed, seed=seed,
        student=student.spec if student else None, expert=expert.spec if expert else None,
        switch_criterion=switch.spec if switch else None, planned_switch=planned, exit_reason="env_error",
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    env = None
    try:
        env = await asyncio.to_thread(EnvSession.open, task, config.repos, limits=config.sandbox_limits,
                                      isolation=config.isolation, work_root=config.work_root,
                                      label=f"{config.strategy}-{task.instance_id}")
        record.timings["env_setup_s"] = round(time.monotonic() - started, 3)
        agent_started = time.monotonic()
        record.exit_reason = await episode.run(env)
        record.error = episode.detail
        record.timings["agent_s"] = round(time.monotonic() - agent_started, 3)
        record.patch = await asyncio.to_thread(env.diff)
    except Exception as exc:  # a broken environment ends this rollout only
        record.exit_reason, record.error = "env_error", f"{type(exc).__name__}: {exc}"
    finally:
        if env is not None:
            await asyncio.to_thread(env.close)
    record.steps, record.switch_step, record.usage = episode.steps, episode.switch_step, episode.usage
    if config.grade and record.exit_reason != "env_error":
        grade_started = time.monotonic()
        record.reward = await asyncio.to_thread(grade, task, record.patch, config.repos,
                                                isolation=config.isolation, work_root=config.work_root)
        record.timings["grade_s"] = round(time.monotonic() - grade_started, 3)
    record.timings["total_s"] = round(time.monotonic() - started, 3)
    return record
