"""Run the rollouts a run directory still lacks, on an executor, and append each finished one to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oec.collect.executors import Executor, LocalExecutor, RolloutJob, work_roots
from oec.collect.interrupt import Interrupted, StopSignal
from oec.collect.records import Trajectory
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir
from oec.env.leftovers import SweepReport, sweep
from oec.tasks.model import Task


@dataclass
class CollectSummary:
    skipped: int = 0
    finished: list[Trajectory] = field(default_factory=list)
    unfinished: int = 0  # left undone by a stop (they run when the collection is resumed)
    swept: SweepReport = field(default_factory=SweepReport)  # leftovers of killed runs removed at start

    @property
    def resolved(self) -> int:
        return sum(t.resolved for t in self.finished)

    def exit_reasons(self) -> Counter:
        return Counter(t.exit_reason for t in self.finished)


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
) -> CollectSummary:
    """Run what is missing from `run_dir`, at most `concurrency` rollouts at once; each is saved as it ends.

    Rollouts run on `executor` (this process by default); only this function
    writes the run directory. Leftovers of killed runs are swept first. Once
    `stop` is requested, nothing new starts; if rollouts were left undone,
    `Interrupted` is raised after everything finished has been written.
    """
    run_dir.open()
    own_executor = executor is None
    executor = executor or LocalExecutor(concurrency)
    stop = stop or StopSignal()
    try:
        summary = CollectSummary(swept=await asyncio.to_thread(sweep, work_roots(configs)))
        jobs, summary.skipped = plan_jobs(tasks, configs, samples, run_dir.done_ids())
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("resolved {task.fields[resolved]}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("collecting", total=len(jobs), resolved=0)
            async with contextlib.aclosing(executor.results(jobs, stop)) as results:  # closed even on error
                async for trajectory in results:
                    await asyncio.to_thread(run_dir.append, trajectory)
                    summary.finished.append(trajectory)
                    progress.update(bar, advance=1, resolved=summary.resolved)
                    if on_finish:
                        on_finish(trajectory)
    finally:
        if own_executor:
            executor.close()
        run_dir.close()
    summary.unfinished = len(jobs) - len(summary.finished)
    if summary.unfinished:
        raise Interrupted(summary, f"stopped with {summary.unfinished} rollout(s) not done")
    return summary
