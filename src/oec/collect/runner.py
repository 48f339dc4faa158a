"""Run the rollouts a run directory still lacks, on an executor, and append each finished one to it.

A rollout that failed to run (model server, sandbox, grader: see `oec.collect.attempts`) is recorded as an
attempt instead, and retried by the next run up to `max_attempts`. After `max_consecutive_failures` such
failures in a row the run stops starting rollouts (those in flight finish) and raises `CircuitOpen`: a
dead server costs a few attempts and a clear message, not a pass over every task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oec.collect.attempts import DEFAULT_MAX_ATTEMPTS, Attempt, AttemptLog, failed_to_run, failure_summary
from oec.collect.executors import Executor, LocalExecutor, RolloutJob, work_roots
from oec.collect.interrupt import Interrupted, StopSignal
from oec.collect.records import Trajectory
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir
from oec.env.leftovers import SweepReport, sweep
from oec.tasks.model import Task


DEFAULT_MAX_CONSECUTIVE_FAILURES = 5


@dataclass
class CollectSummary:
    skipped: int = 0
    finished: list[Trajectory] = field(default_factory=list)  # rollouts that ran (written to trajectories.jsonl)
    failed: list[Attempt] = field(default_factory=list)  # attempts of this run that failed to run (retried later)
    gave_up: int = 0  # rollouts not tried again: they failed to run max_attempts times already
    unfinished: int = 0  # left undone by a stop (they run when the collection is resumed)
    swept: SweepReport = field(default_factory=SweepReport)  # leftovers of killed runs removed at start
    breaker: str | None = None  # why the circuit breaker stopped the run, when it did

    @property
    def resolved(self) -> int:
        return sum(t.resolved for t in self.finished)

    def exit_reasons(self) -> Counter:
        return Counter(t.exit_reason for t in self.finished)

    @property
    def failed_ids(self) -> set[str]:
        return {a.id for a in self.failed}


class CircuitOpen(Exception):
    """The run stopped after too many consecutive infrastructure failures; `summary` says what it kept."""

    def __init__(self, summary: CollectSummary, message: str) -> None:
        super().__init__(message)
        self.summary = summary


def plan_jobs(tasks: list[Task], configs: list[RolloutConfig], samples: int,
              done: set[str]) -> tuple[list[RolloutJob], int]:
    """Every (task, sample, config) not yet in the run directory, in a stable order; and how many are done."""
    jobs, skipped = [], 0
    for config in configs:
        for task in tasks:
            for sample in range(samples):
                job = RolloutJob(task, sample, config)
                if job.id in done:
                    skipped += 1
                else:
                    jobs.append(job)
    return jobs, skipped


@dataclass
class _Recorder:
    """Where each rollout's end goes: trajectories.jsonl when it ran, attempts.jsonl when it failed to run;
    and the circuit breaker, which counts failures to run in a row."""

    run_dir: RunDir
    attempts: AttemptLog
    tried: Counter[str]  # failed attempts per rollout id, this run's included
    summary: CollectSummary
    stop: StopSignal
    breaker_at: int  # 0: never
    in_a_row: int = 0

    async def record(self, trajectory: Trajectory) -> bool:
        """Write the rollout where it belongs; True when it ran."""
        if failed_to_run(trajectory):
            await self._failed(trajectory)
            return False
        self.in_a_row = 0
        await asyncio.to_thread(self.run_dir.append, trajectory)
        self.summary.finished.append(trajectory)
        return True

    async def _failed(self, trajectory: Trajectory) -> None:
        self.tried[trajectory.id] += 1
        self.summary.failed.append(await asyncio.to_thread(self.attempts.append, trajectory,
                                                           self.tried[trajectory.id]))
        self.in_a_row += 1
        if self.breaker_at and self.in_a_row >= self.breaker_at and not self.summary.breaker:
            self.summary.breaker = (f"stopped after {self.in_a_row} rollouts in a row failed to run: "
                                    f"{failure_summary(self.summary.failed[-self.in_a_row:])}")
            self.stop.stopping.set()  # start nothing new; the rollouts in flight end on their own


async def collect(
    tasks: list[Task],
    configs: list[RolloutConfig],
    run_dir: RunDir,
    *,
    samples: int = 1,
    concurrency: int = 4,
    console: Console | None = None,
    on_finish: Callable[[Trajectory], None] | None = None,
    executor: Executor | None = None,
    stop: StopSignal | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
) -> CollectSummary:
    """Run what is missing from `run_dir`, at most `concurrency` rollouts at once; each is saved as it ends.

    Rollouts run on `executor` (this process by default); only this function
    writes the run directory. Leftovers of killed runs are swept first. Once
    `stop` is requested, nothing new starts; if rollouts were left undone,
    `Interrupted` is raised after everything finished has been written.
    Rollouts that failed to run are recorded in attempts.jsonl and planned
    again by the next run until they have failed `max_attempts` times;
    `max_consecutive_failures` in a row (0: never) stop the run with
    `CircuitOpen` once the rollouts in flight are done.
    """
    run_dir.open()
    own_executor = executor is None
    executor = executor or LocalExecutor(concurrency)
    stop = stop or StopSignal()
    try:
        summary = CollectSummary(swept=await asyncio.to_thread(sweep, work_roots(configs)))
        attempts = AttemptLog(run_dir.path)
        tried = attempts.counts()
        jobs, summary.skipped = plan_jobs(tasks, configs, samples, run_dir.done_ids())
        summary.gave_up = sum(tried[job.id] >= max_attempts for job in jobs)
        jobs = [job for job in jobs if tried[job.id] < max_attempts]
        recorder = _Recorder(run_dir, attempts, tried, summary, stop, max_consecutive_failures)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("resolved {task.fields[resolved]}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("collecting", total=len(jobs), resolved=0)
            async with contextlib.aclosing(executor.results(jobs, stop)) as results:  # closed even on error
                async for trajectory in results:
                    ran = await recorder.record(trajectory)
                    progress.update(bar, advance=1, resolved=summary.resolved)
                    if ran and on_finish:
                        on_finish(trajectory)
    finally:
        if own_executor:
            executor.close()
        run_dir.close()
    summary.unfinished = len(jobs) - len(summary.finished) - len(summary.failed)
    if summary.breaker:
        raise CircuitOpen(summary, summary.breaker)
    if summary.unfinished:
        raise Interrupted(summary, f"stopped with {summary.unfinished} rollout(s) not done")
    return summary
