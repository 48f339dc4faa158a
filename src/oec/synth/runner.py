"""One `oec synth` over one repository: candidates -> sandboxed validation (parallel, resumable) -> rows.

Tests: the whole suite runs for every candidate (the clean run's statuses are
cached once per repository, from two runs), unless `test_cmd` narrows it;
rows then run only the failing tests' files. Candidates already in the state
file for this repository, clean commit and test command are not run again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from oec.env.repos import RepoIndex
from oec.env.session import Isolation
from oec.synth.bugrepo import BugRepo, repo_name_for
from oec.synth.candidates import Candidate, generate, is_source_file
from oec.synth.modifiers import KINDS
from oec.synth.rows import DEFAULT_TEST_CMD, build_row
from oec.synth.state import StateFile
from oec.synth.validate import Baseline, Outcome, clean_baseline, run_candidate
from oec.tasks.model import Task

__all__ = ["RepoResult", "SynthConfig", "synth_repo"]


@dataclass
class SynthConfig:
    kinds: tuple[str, ...] = tuple(KINDS)
    seed: int = 0
    max_candidates: int | None = None
    concurrency: int = 2
    test_cmd: str | None = None
    python_env: str | None = None
    isolation: Isolation = "auto"
    writer: str | None = None
    locate: bool = False
    commit: str = "HEAD"
    timeout_s: float | None = None
    work_root: Path | None = None


@dataclass
class RepoResult:
    repo: str
    repo_path: Path
    baseline: Baseline
    outcomes: list[Outcome] = field(default_factory=list)      # one per candidate of this run, in order
    reused: int = 0                                             # outcomes taken from the state file
    new_valid: int = 0                                          # valid outcomes validated in this run
    generation: dict[str, int] = field(default_factory=dict)    # duplicate, syntax_error, ...
    rows: list[Task] = field(default_factory=list)
    seconds: float = 0.0
    validated_seconds: float = 0.0                              # wall time of this run's validation

    def by_kind(self) -> dict[str, Counter]:
        table: dict[str, Counter] = {}
        for outcome in self.outcomes:
            table.setdefault(outcome.kind, Counter())[outcome.status] += 1
        return table


def synth_repo(source: Path, out_dir: Path, config: SynthConfig, state: StateFile, *,
               on_start: Callable[[str, int], None] | None = None,
               on_done: Callable[[Outcome], None] | None = None) -> RepoResult:
    """Synthesize tasks from the git repository `source`; bug commits go to `out_dir/repos/<owner>__<name>`."""
    started = time.monotonic()
    repo = repo_name_for(source)
    repos_dir = out_dir / "repos"
    bug_repo = BugRepo.prepare(source, repos_dir / repo.replace("/", "__"), config.commit)
    index = RepoIndex([repos_dir])
    command = config.test_cmd or DEFAULT_TEST_CMD
    baseline = clean_baseline(repo, bug_repo.clean, command, index, cache=out_dir / "synth-cache",
                              python_env=config.python_env, isolation=config.isolation,
                              work_root=config.work_root)
    result = RepoResult(repo, bug_repo.path, baseline)
    files = bug_repo.files()
    sources = {path: text for path, text in files.items() if is_source_file(path)}
    candidates: list[Candidate] = list(islice(generate(sources, kinds=config.kinds, seed=config.seed,
                                                       stats=result.generation), config.max_candidates))
    done = state.done(repo, bug_repo.clean, command)
    outcomes: dict[str, Outcome] = {}
    todo = []
    for candidate in candidates:
        record = done.get(candidate.id)
        if record is not None:
            outcomes[candidate.id] = Outcome(**record["outcome"])
            result.reused += 1
        else:
            todo.append(candidate)
    if on_start:
        on_start(repo, len(todo))
    validation_started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(1, config.concurrency), thread_name_prefix="synth")
    try:
        futures = {pool.submit(run_candidate, c, baseline, repo, index, python_env=config.python_env,
                               isolation=config.isolation, work_root=config.work_root,
                               timeout_s=config.timeout_s): c for c in todo}
        for future in as_completed(futures):
            candidate = futures[future]
            outcome = future.result()
            state.append(repo, bug_repo.clean, command, outcome,
                         candidate.content if outcome.status == "valid" else None)
            outcomes[candidate.id] = outcome
            result.new_valid += outcome.status == "valid"
            if on_done:
                on_done(outcome)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # what finished is in the state file; rerun to go on
        raise
    pool.shutdown(wait=True)
    result.validated_seconds = time.monotonic() - validation_started
    result.outcomes = [outcomes[c.id] for c in candidates]
    for candidate in candidates:
        outcome = outcomes[candidate.id]
        if outcome.status == "valid":
            result.rows.append(build_row(outcome, candidate.content, bug_repo, repo, command,
                                         custom_cmd=config.test_cmd is not None, python_env=config.python_env,
                                         writer=config.writer, clean_files=files, locate=config.locate))
    result.seconds = time.monotonic() - started
    return result
