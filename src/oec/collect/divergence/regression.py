"""`regression`: a PASS_TO_PASS test that passed at the start fails after a student edit."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field

from oec.collect.divergence.watch import Counts, Watch, WatchedEnv
from oec.collect.episode import Episode
from oec.collect.records import Firing
from oec.grading.log_parsers import PASSING, parse_pytest_log


def regression_command(test_ids: list[str]) -> str:
    """Just the given tests, quietly, leaving nothing behind in the tree (no bytecode, no pytest cache);
    -rA makes pytest print a status line per test, which the grader's log parser reads."""
    return "PYTHONDONTWRITEBYTECODE=1 " + shlex.join(
        ["python", "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *test_ids])


@dataclass
class RegressionDetector(Counts):
    """A student edit that breaks a test that passed at the start is a wrong turn the student may never see.

    The baseline runs once, before the student's first step (the tree is the base commit then); tests that
    do not pass there (missing, or broken in this environment) are never blamed. Only the task's
    PASS_TO_PASS ids run, at most every `every` student steps and only when the diff changed since the
    last run. These runs are not agent steps and leave no trace in the history.
    """

    name = "regression"
    every: int = 5
    timeout_s: float = 300.0
    baseline: frozenset[str] = field(default=frozenset(), init=False)
    last_calls: int = field(default=0, init=False)
    last_diff: str = field(default="", init=False)

    async def _passing(self, env: WatchedEnv, ids: list[str]) -> set[str] | None:
        result = await asyncio.to_thread(env.run, regression_command(ids), timeout_s=self.timeout_s)
        self.checks += 1
        if result.timed_out:
            self.extra["regression_timeouts"] += 1
            return None
        statuses = parse_pytest_log(result.output)
        return {t for t in ids if statuses.get(t) in PASSING}

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        ids = list(dict.fromkeys(episode.task.PASS_TO_PASS))
        self.baseline = frozenset(await self._passing(env, ids) or ()) if ids else frozenset()
        self.last_diff = await asyncio.to_thread(env.diff)

    async def check(self, watch: Watch) -> Firing | None:
        if not self.baseline or watch.calls - self.last_calls < self.every:
            return None
        diff = await watch.diff()
        if diff == self.last_diff:
            return None
        self.last_calls, self.last_diff = watch.calls, diff
        passing = await self._passing(watch.env, sorted(self.baseline))
        if passing is None:
            return None
        broken = sorted(self.baseline - passing)
        if not broken:
            return None
        evidence = {"broken": broken[:20], "broken_count": len(broken), "baseline_passing": len(self.baseline)}
        return Firing(detector=self.name, step=watch.step.index, evidence=evidence,
                      reason=f"{len(broken)} test(s) that passed at the start now fail: {', '.join(broken[:3])}")
