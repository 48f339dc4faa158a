"""Where rollouts run: in this process (asyncio) or as Ray tasks across machines.

An executor takes the rollouts still to do and yields each trajectory as it
finishes; the runner alone writes them. A rollout has two phases, the agent
(environment, episode, patch) and grading; both executors keep at most
`concurrency` rollouts in their agent phase and grade on separate slots, so
the model servers stay busy while patches are tested. They start nothing once
a stop is requested (what has started finishes, grading included), and on
abandon drop those in flight (this process's are cancelled and their
sandboxes closed; Ray's are cancelled on the workers).

A rollout never raises out of an executor: an exception anywhere in it (a
model backend's bug, a provider that cannot be built on a worker, a worker
that died) becomes that rollout's exit reason, ``error``, with the exception
in `error`, and the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Protocol

from oec.collect.interrupt import StopSignal
from oec.collect.records import Trajectory, trajectory_id
from oec.collect.rollout import RolloutConfig, grade_rollout, needs_grading, run_agent
from oec.collect.seeding import derive_seed, rollout_rng
from oec.tasks.model import Task

ExecutorKind = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("local", "ray")

#: how long abandoned rollouts get to close their sandboxes before the run sweeps what is left
ABANDON_GRACE_S = 5.0


@dataclass(frozen=True)
class RolloutJob:
    """One rollout to run: a task, its sample index, and the run's settings for its strategy."""

    task: Task
    sample: int
    config: RolloutConfig

    @property
    def id(self) -> str:
        return trajectory_id(self.task.instance_id, self.config.strategy, self.sample)


class Executor(Protocol):
    def results(self, jobs: Sequence[RolloutJob], stop: StopSignal) -> AsyncGenerator[Trajectory, None]:
        """Run `jobs`, yielding each trajectory as it ends; see the module docstring for stopping."""
        ...

    def close(self) -> None:
        """Release what the executor started (a local Ray cluster); idempotent."""
        ...


def failure_trajectory(job: RolloutJob, exc: BaseException | str) -> Trajectory:
    """The record of a rollout that crashed outside the episode: same id and seeds, exit reason ``error``."""
    config, iid = job.config, job.task.instance_id
    switch = config.switch if config.strategy == "oec" else None
    try:
        planned = switch.plan(rollout_rng(config.seed, iid, config.strategy, job.sample)) if switch else None
    except Exception:
        planned = None
    if isinstance(exc, BaseException):
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
        error = f"{type(exc).__name__}: {exc}{at}"
    else:
        error = exc
    return Trajectory(
        id=job.id, instance_id=iid, strategy=config.strategy, sample_index=job.sample, run_seed=config.seed,
        seed=derive_seed(config.seed, iid, config.strategy, job.sample),
        student=getattr(config.student, "spec", None) if config.strategy != "bc" else None,
        expert=getattr(config.expert, "spec", None) if config.strategy != "on-policy" else None,
        switch_criterion=switch.spec if switch else None, planned_switch=planned,
        exit_reason="error", error=error, started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


async def safe_agent(job: RolloutJob) -> Trajectory:
    """The agent phase (`run_agent`), with any exception turned into the rollout's record (cancellation
    still propagates)."""
    try:
        return await run_agent(job.task, job.sample, job.config)
    except Exception as exc:
        return failure_trajectory(job, exc)


async def safe_grade(job: RolloutJob, record: Trajectory, *, waited_s: float = 0.0) -> Trajectory:
    """The grading phase (`grade_rollout`); it never raises for a grader's failure (cancellation propagates)."""
    try:
        return await grade_rollout(record, job.task, job.config, waited_s=waited_s)
    except Exception as exc:
        record.exit_reason, record.error = "grade_error", f"{type(exc).__name__}: {exc}"
        return record


def default_grading_slots(concurrency: int) -> int:
    """Gradings at once unless told: one per core (local grading is CPU-bound), never more than the rollouts."""
    return max(1, min(concurrency, os.cpu_count() or 1))


def work_roots(configs: Iterable[RolloutConfig]) -> list[Path]:
    """The folders these rollouts make workspaces in (where leftovers of killed runs are looked for)."""
    from oec.env.workspace import default_work_root

    return list(dict.fromkeys(c.work_root or default_work_root() for c in configs))


class LocalExecutor:
    """Rollouts as asyncio tasks in this process: at most `concurrency` in their agent phase at once.

    Grading is a second phase with its own `grading_slots`: a rollout leaves its
    agent slot (and so its model slot) once its patch is taken, and the next
    rollout starts while it is graded, so tests that take long to run do not
    leave the model servers idle. At most `concurrency` graded-to-be rollouts
    wait beyond those being graded; when grading falls that far behind, no new
    rollout starts until it catches up.

    Abandoning assumes the process is about to exit: after the grace period it
    sweeps every leftover of this pid (workspaces, sandbox dirs, cgroups), which
    would include those of another collection running in the same process.
    """

    def __init__(self, concurrency: int = 4, *, grading_slots: int | None = None,
                 abandon_grace_s: float = ABANDON_GRACE_S) -> None:
        self.concurrency = max(1, concurrency)
        self.grading_slots = max(1, grading_slots or default_grading_slots(self.concurrency))
        self.abandon_grace_s = abandon_grace_s

    async def results(self, jobs: Sequence[RolloutJob], stop: StopSignal) -> AsyncGenerator[Trajectory, None]:
        queue = list(reversed(jobs))
        running: set[asyncio.Task[Trajectory]] = set()
        abandon = asyncio.ensure_future(stop.abandoning.wait())
        grading = asyncio.Semaphore(self.grading_slots)
        agent_slot_freed = asyncio.Event()
        in_agent = 0

        def leave_agent_phase() -> None:
            nonlocal in_agent
            in_agent -= 1
            agent_slot_freed.set()

        most_in_flight = self.concurrency + self.grading_slots + self.concurrency  # agents, graders, backlog
        try:
            while True:
                while (queue and in_agent < self.concurrency and len(running) < most_in_flight
                       and not stop.stopping.is_set()):
                    in_agent += 1
                    running.add(asyncio.ensure_future(self._rollout(queue.pop(), leave_agent_phase, grading)))
                if not running:
                    return
                agent_slot_freed.clear()
                freed = asyncio.ensure_future(agent_slot_freed.wait())
                try:
                    done, _ = await asyncio.wait(running | {abandon, freed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    freed.cancel()
                for finished in done - {abandon, freed}:
                    running.discard(finished)
                    yield finished.result()
                if abandon.done():
                    await self._abandon(running, jobs)
                    return
        finally:  # also when the consumer stops early (it failed to write): leave nothing running
            abandon.cancel()
            for task in running:
                task.cancel()

    @staticmethod
    async def _rollout(job: RolloutJob, leave_agent_phase: Callable[[], None],
                       grading: asyncio.Semaphore) -> Trajectory:
        """Agent phase, then (after giving its slot back) grading under the grading slots."""
        try:
            record = await safe_agent(job)
        finally:
            leave_agent_phase()
        if not needs_grading(record, job.config):
            return record
        queued = time.monotonic()
        async with grading:
            return await safe_grade(job, record, waited_s=time.monotonic() - queued)

    async def _abandon(self, running: set[asyncio.Task[Trajectory]], jobs: Sequence[RolloutJob]) -> None:
        """Cancel the rollouts in flight, let them close their sandboxes briefly, then sweep this pid's rest."""
        from oec.env.leftovers import sweep

        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=self.abandon_grace_s)
        # what a thread was still creating when its rollout was cancelled (a workspace being cloned, a grader's)
        await asyncio.to_thread(sweep, work_roots(j.config for j in jobs), also_pids={os.getpid()})

    def close(self) -> None:
        pass


def make_executor(kind: str, *, concurrency: int, address: str | None = None,
                  grading_slots: int | None = None) -> Executor:
    """The executor named by ``--executor`` (Ray is imported only when chosen)."""
    if kind == "local":
        if address:
            raise ValueError("--ray-address needs --executor ray")
        return LocalExecutor(concurrency, grading_slots=grading_slots)
    if kind == "ray":
        from oec.collect.ray_executor import RayExecutor

        return RayExecutor(concurrency=concurrency, address=address, grading_slots=grading_slots)
    raise ValueError(f"--executor {kind!r}: expected one of {', '.join(EXECUTORS)}")
