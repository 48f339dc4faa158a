"""One rollout end to end: environment up, episode, patch, grade, record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from oec.collect.divergence import monitor_for, switch_record
from oec.collect.episode import Actor, Episode, EpisodeLimits
from oec.collect.records import Trajectory, trajectory_id
from oec.collect.schedules import Strategy, SwitchSampler
from oec.collect.seeding import derive_seed, rollout_rng
from oec.env.repos import RepoIndex
from oec.env.sandbox import SandboxLimits
from oec.env.session import EnvBackend, EnvSession, Isolation, PatchUnavailable, open_session
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
    limits: EpisodeLimits = EpisodeLimits()
    sandbox_limits: SandboxLimits = SandboxLimits()
    isolation: Isolation = "auto"
    work_root: Path | None = None
    env_backend: EnvBackend = "local"  # "local" | "docker" | a DockerConfig (oec.env.docker_backend)
    grade: bool = True


def _actors(config: RolloutConfig, task: Task) -> tuple[Actor | None, Actor | None]:
    student = Actor("student", config.student.spec, config.student.for_task(task)) if config.student else None
    expert = Actor("expert", config.expert.spec, config.expert.for_task(task)) if config.expert else None
    if config.strategy == "bc":
        return None, expert
    if config.strategy == "on-policy":
        return student, None
    return student, expert


async def _open_env(task: Task, config: RolloutConfig) -> EnvSession:
    """Open the rollout's environment in a thread; if the rollout is cancelled meanwhile (a run abandoning
    its rollouts), close the environment once the thread has made it, so no workspace is left behind."""
    opening = asyncio.ensure_future(asyncio.to_thread(
        open_session, task, config.repos, backend=config.env_backend, limits=config.sandbox_limits,
        isolation=config.isolation, work_root=config.work_root, label=f"{config.strategy}-{task.instance_id}"))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        try:
            env = await opening
            await asyncio.to_thread(env.close)
        except BaseException:  # cancelled again, or the opening failed: nothing more to do
            pass
        raise


async def run_rollout(task: Task, sample_index: int, config: RolloutConfig) -> Trajectory:
    """Run, grade and record one rollout; errors of the environment become the exit reason, not a crash."""
    return await grade_rollout(await run_agent(task, sample_index, config), task, config)


async def run_agent(task: Task, sample_index: int, config: RolloutConfig) -> Trajectory:
    """The rollout up to its patch (environment up, episode, diff, environment down), not yet graded.

    Executors run this phase and `grade_rollout` under separate limits, so a
    rollout being graded no longer holds one of the model servers' slots.
    """
    started = time.monotonic()
    seed = derive_seed(config.seed, task.instance_id, config.strategy, sample_index)
    student, expert = _actors(config, task)
    switch = config.switch if config.strategy == "oec" else None
    planned = switch.plan(rollout_rng(config.seed, task.instance_id, config.strategy, sample_index)) if switch else None
    episode = Episode(task, student, expert, switch, planned, config.limits, observer=monitor_for(switch, expert))
    record = Trajectory(
        id=trajectory_id(task.instance_id, config.strategy, sample_index), instance_id=task.instance_id,
        strategy=config.strategy, sample_index=sample_index, run_seed=config.seed, seed=seed,
        student=student.spec if student else None, expert=expert.spec if expert else None,
        switch_criterion=switch.spec if switch else None, planned_switch=planned, exit_reason="env_error",
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    env = None
    try:
        env = await _open_env(task, config)
        record.timings["env_setup_s"] = round(time.monotonic() - started, 3)
        agent_started = time.monotonic()
        record.exit_reason = await episode.run(env)
        record.error = episode.detail
        record.timings["agent_s"] = round(time.monotonic() - agent_started, 3)
        try:
            record.patch = await asyncio.to_thread(env.diff)
        except PatchUnavailable as exc:  # the model broke its own repository: its patch is empty, graded as such
            record.patch, record.error = "", f"no patch: {exc}"
    except Exception as exc:  # a broken environment ends this rollout only
        record.exit_reason, record.error = "env_error", f"{type(exc).__name__}: {exc}"
    finally:
        if env is not None:
            await asyncio.to_thread(env.close)
    record.steps, record.switch_step, record.usage = episode.steps, episode.switch_step, episode.usage
    record.switch_reason, record.divergence_checks = switch_record(episode)
    record.timings["total_s"] = round(time.monotonic() - started, 3)
    return record


def needs_grading(record: Trajectory, config: RolloutConfig) -> bool:
    """Whether `grade_rollout` has work to do (a rollout whose environment never came up has no patch)."""
    return config.grade and record.exit_reason != "env_error" and record.reward is None


async def grade_rollout(record: Trajectory, task: Task, config: RolloutConfig, *, waited_s: float = 0.0) -> Trajectory:
    """Grade the rollout's patch in a fresh environment (see oec.grading); a grader bug becomes `grade_error`.

    `waited_s`: how long it queued for a grading slot once its agent phase ended (kept as `grade_wait_s`);
    `total_s` grows by that wait and by the grading."""
    if not needs_grading(record, config):
        return record
    if waited_s:
        record.timings["grade_wait_s"] = round(waited_s, 3)
        record.timings["total_s"] = round(record.timings.get("total_s", 0.0) + waited_s, 3)
    grade_started = time.monotonic()
    try:
        record.reward = await asyncio.to_thread(grade, task, record.patch, config.repos, isolation=config.isolation,
                                                work_root=config.work_root, env=config.env_backend)
    except Exception as exc:  # a grader bug: this rollout cannot be trusted, the run goes on
        record.exit_reason, record.error = "grade_error", f"{type(exc).__name__}: {exc}"
    record.timings["grade_s"] = round(time.monotonic() - grade_started, 3)
    record.timings["total_s"] = round(record.timings.get("total_s", 0.0) + record.timings["grade_s"], 3)
    return record
