"""Grade many (task, patch) pairs in parallel threads, with a rich progress bar."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oec.env.repos import RepoIndex
from oec.env.session import EnvBackend, Isolation
from oec.grading.grader import GradeResult, grade
from oec.tasks.model import Task


def grade_many(
    pairs: Iterable[tuple[Task, str]],
    repos: RepoIndex,
    *,
    jobs: int = 2,
    isolation: Isolation = "auto",
    env: EnvBackend = "local",
    console: Console | None = None,
    description: str = "grading",
) -> list[GradeResult]:
    """Grade each pair; results come back in the input order whatever order they finish in."""
    pairs = list(pairs)
    results: list[GradeResult | None] = [None] * len(pairs)
    resolved = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("resolved {task.fields[resolved]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        bar = progress.add_task(description, total=len(pairs), resolved=0)
        futures = {pool.submit(grade, task, patch, repos, isolation=isolation, env=env): i
                   for i, (task, patch) in enumerate(pairs)}
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            resolved += result.resolved
            progress.update(bar, advance=1, resolved=resolved)
    return [r for r in results if r is not None]
