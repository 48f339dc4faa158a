"""The numbers at the top of the report, computed once from the records.

Kept free of HTML and matplotlib so the same figures feed the tables, the
plots and the tests, and so a number in a table and the bar drawn for it can
never disagree.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oec.collect.attempts import failed_to_run
from oec.collect.records import Trajectory
from oec.eval.stats import wilson_interval


@dataclass
class Rate:
    """k of n with a 95% Wilson interval (sound at small n and at rates of 0 or 1)."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)


@dataclass
class StrategyStats:
    strategy: str
    resolved: Rate
    student_steps: list[int] = field(default_factory=list)  # per rollout
    expert_steps: list[int] = field(default_factory=list)
    exit_reasons: Counter[str] = field(default_factory=Counter)
    not_run: int = 0  # rollouts that failed to run (model server, sandbox, grader): not in the rate

    @property
    def mean_student_steps(self) -> float:
        return sum(self.student_steps) / len(self.student_steps) if self.student_steps else 0.0

    @property
    def mean_expert_steps(self) -> float:
        return sum(self.expert_steps) / len(self.expert_steps) if self.expert_steps else 0.0


@dataclass
class ModelTotals:
    """Usage of one model spec summed over every rollout it acted in (cost None when any price was unknown)."""

    spec: str
    roles: set[str] = field(default_factory=set)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0


@dataclass
class Summary:
    total: int
    resolved: Rate
    strategies: list[StrategyStats]
    models: list[ModelTotals]
    switch_rates: dict[int | None, Rate]  # OEC rollouts by switch step (None: the expert never acted)
    filter_report: dict[str, Any] | None
    drops: dict[str, tuple[str, str]]  # trajectory id -> (rule, reason)


def source_counts(trajectory: Trajectory) -> tuple[int, int]:
    student = sum(1 for s in trajectory.steps if s.source == "student")
    return student, len(trajectory.steps) - student


def load_filter_report(path: Path) -> dict[str, Any] | None:
    """filter_report.json when `oec filter` ran; None when it did not (the report then says so)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def summarize(trajectories: list[Trajectory], filter_report: dict[str, Any] | None,
              not_run: Counter[str] | None = None) -> Summary:
    """The report's numbers over the rollouts that ran; `not_run` (per strategy) and any legacy record of a
    rollout that failed to run are counted beside them, never as unresolved."""
    failed = Counter(t.strategy for t in trajectories if failed_to_run(t)) + (not_run or Counter())
    trajectories = [t for t in trajectories if not failed_to_run(t)]
    by_strategy: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_strategy[t.strategy].append(t)
    strategies = []
    for name in sorted(set(by_strategy) | set(failed), key=_strategy_order):
        group = by_strategy[name]
        stats = StrategyStats(name, Rate(sum(t.resolved for t in group), len(group)), not_run=failed[name])
        for t in group:
            student, expert = source_counts(t)
            stats.student_steps.append(student)
            stats.expert_steps.append(expert)
            stats.exit_reasons[t.exit_reason] += 1
        strategies.append(stats)

    models: dict[str, ModelTotals] = {}
    for t in trajectories:
        for role, usage in t.usage.items():
            totals = models.setdefault(usage.spec, ModelTotals(usage.spec))
            totals.roles.add(role)
            totals.calls += usage.calls
            totals.prompt_tokens += usage.prompt_tokens
            totals.completion_tokens += usage.completion_tokens
            totals.cost_usd = None if totals.cost_usd is None or usage.cost_usd is None else totals.cost_usd + usage.cost_usd

    switch: dict[int | None, list[bool]] = defaultdict(list)
    for t in by_strategy.get("oec", []):
        switch[t.switch_step].append(t.resolved)
    switch_rates = {k: Rate(sum(v), len(v)) for k, v in sorted(switch.items(), key=lambda kv: _none_last(kv[0]))}

    drops = {}
    for drop in (filter_report or {}).get("drops", []):
        if isinstance(drop, dict) and "id" in drop:
            drops[str(drop["id"])] = (str(drop.get("rule", "?")), str(drop.get("reason", "")))
    return Summary(total=len(trajectories), resolved=Rate(sum(t.resolved for t in trajectories), len(trajectories)),
                   strategies=strategies, models=sorted(models.values(), key=lambda m: m.spec),
                   switch_rates=switch_rates, filter_report=filter_report, drops=drops)


def _strategy_order(name: str) -> tuple[int, str]:
    """bc, on-policy, oec first (the paper's order), anything else after, alphabetically."""
    known = ("bc", "on-policy", "oec")
    return (known.index(name) if name in known else len(known), name)


def _none_last(value: int | None) -> tuple[int, int]:
    return (1, 0) if value is None else (0, value)
