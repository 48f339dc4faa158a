"""The local executor's two phases: a rollout being graded gives its agent (model) slot to the next one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from oec.collect import executors
from oec.collect.executors import LocalExecutor, RolloutJob
from oec.collect.interrupt import StopSignal
from oec.collect.records import Trajectory
from oec.collect.rollout import RolloutConfig
from oec.env.repos import RepoIndex
from oec.tasks.model import Task

GRADE_S = 0.3


class PhaseLog:
    """Fake phases (the scheduling around them is under test; tests/test_collect.py runs the real ones)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.grading = 0
        self.most_grading = 0

    async def run_agent(self, task: Task, sample: int, config: RolloutConfig) -> Trajectory:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.events.append(("agent", task.instance_id))
        await asyncio.sleep(0.01)
        return Trajectory(id=task.instance_id, instance_id=task.instance_id, strategy="bc", sample_index=sample,
                          run_seed=0, seed=0, exit_reason="submitted", patch="")

    async def grade_rollout(self, record: Trajectory, task: Task, config: RolloutConfig, *,
                            waited_s: float = 0.0) -> Trajectory:
        self.grading += 1
        self.most_grading = max(self.most_grading, self.grading)
        self.events.append(("grade", task.instance_id))
        await asyncio.sleep(GRADE_S)
        self.events.append(("graded", task.instance_id))
        self.grading -= 1
        self.in_flight -= 1
        record.timings["grade_wait_s"] = round(waited_s, 3)
        return record


@pytest.fixture
def phases(monkeypatch: pytest.MonkeyPatch) -> PhaseLog:
    log = PhaseLog()
    monkeypatch.setattr(executors, "run_agent", log.run_agent)
    monkeypatch.setattr(executors, "grade_rollout", log.grade_rollout)
    return log


def _jobs(n: int, tmp_path: Path, grade: bool = True) -> list[RolloutJob]:
    config = RolloutConfig(strategy="bc", student=None, expert=None, switch=None, repos=RepoIndex([tmp_path]),
                           grade=grade)
    return [RolloutJob(Task(instance_id=f"t-{i}", repo="a/b", base_commit="0" * 40, problem_statement="p"), 0, config)
            for i in range(n)]


async def _run(executor: LocalExecutor, jobs: list[RolloutJob]) -> list[Trajectory]:
    return [t async for t in executor.results(jobs, StopSignal())]


def test_next_agent_starts_while_the_last_rollout_is_graded(phases: PhaseLog, tmp_path: Path) -> None:
    done = asyncio.run(_run(LocalExecutor(1, grading_slots=1), _jobs(2, tmp_path)))
    assert sorted(t.id for t in done) == ["t-0", "t-1"]
    order = phases.events
    assert order.index(("agent", "t-1")) < order.index(("graded", "t-0")), order


def test_grading_slots_and_backlog_are_bounded(phases: PhaseLog, tmp_path: Path) -> None:
    """Grading that falls behind holds back new rollouts: agents + graders + a backlog of `concurrency`."""
    done = asyncio.run(_run(LocalExecutor(2, grading_slots=1), _jobs(10, tmp_path)))
    assert len(done) == 10
    assert phases.most_grading == 1
    assert phases.most_in_flight <= 2 + 1 + 2
    assert max(t.timings["grade_wait_s"] for t in done) >= GRADE_S  # they did queue for the one grader


def test_ungraded_rollouts_skip_the_grading_queue(phases: PhaseLog, tmp_path: Path) -> None:
    done = asyncio.run(_run(LocalExecutor(1, grading_slots=1), _jobs(3, tmp_path, grade=False)))
    assert len(done) == 3 and not [e for e in phases.events if e[0] == "grade"]


def test_default_grading_slots_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 4)
    assert LocalExecutor(32).grading_slots == 4
    assert LocalExecutor(2).grading_slots == 2
    assert LocalExecutor(32, grading_slots=9).grading_slots == 9
