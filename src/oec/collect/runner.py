"""Keep many rollouts in flight (asyncio) and append each finished one to the run directory."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oec.collect.records import Trajectory, trajectory_id
from oec.collect.rollout import RolloutConfig, run_rollout
from oec.collect.run_dir import RunDir
from oec.tasks.model import Task


@dataclass
class CollectSummary:
    skipped: int = 0
    finished: list[Trajectory] = field(default_factory=list)

    @property
    def resolved(self) -> int:
        return sum(t.resolved for t in self.finished)

    def exit_reasons(self) -> Counter:
        return Counter(t.exit_reason for t in self.finished)


def plan_jobs(tasks: list[Task], configs: list[RolloutConfig], samples: int, done: set[str]):
    """Every (task, sample, config) not yet in the run directory, in a stable order."""
    jobs, skipped = [], 0
    for config in configs:
        for task in tasks:
            for sample in range(samples):
                if trajectory_id(task.instance_id, config.strategy, sample) in done:
                    skipped += 1
                else:
                    jobs.append((task, sample, config))
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
) -> CollectSummary:
    """Run what is missing from `run_dir`, at most `concurrency` rollouts at once; each is saved as it ends."""
    run_dir.open()
    jobs, skipped = plan_jobs(tasks, configs, samples, run_dir.done_ids())
    summary = CollectSummary(skipped=skipped)
    gate = asyncio.Semaphore(max(1, concurrency))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("resolved {task.fields[resolved]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("collecting", total=len(jobs), resolved=0)

        async def one(task: Task, sample: int, config: RolloutConfig) -> None:
            async with gate:
                trajectory = await run_rollout(task, sample, config)
            await asyncio.to_thread(run_dir.append, trajectory)
            summary.finished.append(trajectory)
            progress.update(bar, advance=1, resolved=summary.resolved)
            if on_finish:
                on_finish(trajectory)

        await asyncio.gather(*(one(*job) for job in jobs))
    return summary
