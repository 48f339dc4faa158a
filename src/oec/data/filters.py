"""Filters over trajectories: which rollouts are good enough to train on.

Rejection sampling keeps resolved rollouts only, but resolved is not enough:
the paper found that a few low-quality positives (an agent looping on the
same command until the expert happens to fix things) destabilise training.
So each rule here is small, typed and explains itself: `check` returns a
Verdict with the reason a trajectory was dropped, and `apply_filters`
attributes every dropped trajectory to the FIRST rule that drops it, so the
report says exactly what each rule cost, per strategy.

Rules are frozen dataclasses (never code from strings); compose them by
listing them in the order they should be charged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

from oec.agent.history import Step
from oec.collect.attempts import failed_to_run
from oec.collect.records import Trajectory
from oec.grading.patch_policy import reward_hack_reasons

__all__ = [
    "Drop",
    "ExitReasons",
    "Filter",
    "FilterReport",
    "MaxSteps",
    "RepeatFound",
    "Repetition",
    "Resolved",
    "RewardHack",
    "Verdict",
    "apply_filters",
    "default_filters",
    "exit_reasons",
    "find_repetition",
    "max_steps",
    "repetition",
    "resolved",
    "reward_hack",
    "step_key",
]


@dataclass(frozen=True)
class Verdict:
    """Keep or drop, and why (the reason is shown in reports; None when kept)."""

    keep: bool
    reason: str | None = None

    @classmethod
    def kept(cls) -> "Verdict":
        return cls(True)

    @classmethod
    def dropped(cls, reason: str) -> "Verdict":
        return cls(False, reason)


@runtime_checkable
class Filter(Protocol):
    """A rule over one trajectory. `name` keys the report's counts; `describe` records the settings."""

    name: str

    def check(self, trajectory: Trajectory) -> Verdict: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Resolved:
    """Rejection sampling: keep rollouts whose patch passed the task's tests."""

    name: str = field(default="resolved", init=False)

    def check(self, trajectory: Trajectory) -> Verdict:
        if trajectory.resolved:
            return Verdict.kept()
        if trajectory.reward is None:
            return Verdict.dropped("not graded")
        return Verdict.dropped(f"not resolved ({trajectory.reward.status})")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True)
class RewardHack:
    """Drop rollouts whose patch touches tests or test infrastructure, even resolved ones: no reward-hack positives.

    The patch is judged by the grader's own rules (`oec.grading.patch_policy`):
    edits to test files and test folders, conftest.py and pytest's configuration,
    `.git`, compiled code, modules that shadow pytest or the standard library,
    symlinks and binaries, and added code that reaches for pytest's internals. What
    the grader dropped or refused when it graded the rollout counts too. The verdict
    names the first reason; the report counts drops per reason.
    """

    name: str = field(default="reward_hack", init=False)

    def check(self, trajectory: Trajectory) -> Verdict:
        found = reward_hack_reasons(trajectory.patch)
        if trajectory.reward is not None:
            found.update(trajectory.reward.dropped)
            if trajectory.reward.status == "patch_refused":
                found.setdefault("(whole patch)", "refused by the grader")
        if not found:
            return Verdict.kept()
        path, reason = next(iter(found.items()))
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        return Verdict.dropped(f"{reason}: {path}{more}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def step_key(step: Step) -> str:
    """What counts as "the same action": the normalized action, or the folded text of an invalid reply.

    Invalid replies are keyed by their text so that a model repeating the same
    broken reply is caught as a loop too.
    """
    if step.action is not None:
        return step.action.normalized()
    return "invalid:" + " ".join(step.raw_text.split())


@dataclass(frozen=True)
class RepeatFound:
    """The first loop in a list of steps: the same action `count` times in a row (kind "consecutive", from
    step `first`), or the same (action, observation) pair `count` times anywhere (kind "pair", first seen at
    step `first`); `last` is the step that completed it."""

    kind: str
    key: str
    count: int
    first: int
    last: int

    def describe(self) -> str:
        if self.kind == "consecutive":
            return f"{_short(self.key)!r} {self.count} times in a row (from step {self.first})"
        return f"{_short(self.key)!r} with the same observation {self.count} times (last at step {self.last})"


def find_repetition(steps: Sequence[Step], max_repeat: int) -> RepeatFound | None:
    """The first place where `steps` repeat: shared by the repetition filter (after the fact) and the loop
    detector of divergence switching (during the rollout), so both call the same thing a loop."""
    run_key, run_length, run_start = None, 0, 0
    pairs: Counter[tuple[str, str]] = Counter()
    pair_first: dict[tuple[str, str], int] = {}
    for step in steps:
        key = step_key(step)
        if key == run_key:
            run_length += 1
        else:
            run_key, run_length, run_start = key, 1, step.index
        if run_length >= max_repeat:
            return RepeatFound("consecutive", key, run_length, run_start, step.index)
        pair = (key, step.observation.strip())
        pairs[pair] += 1
        pair_first.setdefault(pair, step.index)
        if pairs[pair] >= max_repeat:
            return RepeatFound("pair", key, pairs[pair], pair_first[pair], step.index)
    return None


@dataclass(frozen=True)
class Repetition:
    """Drop loops: the same action `max_repeat` times in a row, or the same (action, observation) `max_repeat` times.

    The second form catches loops that are interleaved with other steps (run
    the tests, look, run the same tests and get the same output, ...), which
    a consecutive count misses. Both the student's and the expert's steps are
    checked by default: an OEC rollout whose student prefix loops is still a
    low-quality positive; pass `sources` to check only some. `trained_only` checks only the turns training
    would supervise (an OEC rollout's expert turns; every turn of the other strategies).
    """

    max_repeat: int = 3
    sources: frozenset[str] = frozenset({"student", "expert"})
    trained_only: bool = False
    name: str = field(default="repetition", init=False)

    def __post_init__(self) -> None:
        if self.max_repeat < 2:
            raise ValueError(f"repetition: max_repeat must be at least 2 (got {self.max_repeat}); 1 would drop everything")

    def check(self, trajectory: Trajectory) -> Verdict:
        masked = self.trained_only and trajectory.strategy == "oec"
        steps = [s for s in trajectory.steps if s.source in self.sources and not (masked and s.source != "expert")]
        found = find_repetition(steps, self.max_repeat)
        return Verdict.kept() if found is None else Verdict.dropped(found.describe())

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, "max_repeat": self.max_repeat, "sources": sorted(self.sources)}
        return {**described, "trained_only": True} if self.trained_only else described


@dataclass(frozen=True)
class MaxSteps:
    """Drop rollouts longer than `limit` steps: long ones are mostly wandering, and costly to train on."""

    limit: int
    name: str = field(default="max_steps", init=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"max_steps: limit must be at least 1 (got {self.limit})")

    def check(self, trajectory: Trajectory) -> Verdict:
        if len(trajectory.steps) > self.limit:
            return Verdict.dropped(f"{len(trajectory.steps)} steps > {self.limit}")
        return Verdict.kept()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit}


@dataclass(frozen=True)
class ExitReasons:
    """Keep only rollouts that ended one of these ways (e.g. `submitted`: a resolved patch left at a limit is luck)."""

    allowed: frozenset[str]
    name: str = field(default="exit_reason", init=False)

    def __post_init__(self) -> None:
        if not self.allowed:
            raise ValueError("exit_reasons: give at least one exit reason to keep")

    def check(self, trajectory: Trajectory) -> Verdict:
        if trajectory.exit_reason in self.allowed:
            return Verdict.kept()
        return Verdict.dropped(f"exit reason {trajectory.exit_reason!r} not in {sorted(self.allowed)}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "allowed": sorted(self.allowed)}


@dataclass(frozen=True)
class Ran:
    """Drop records of rollouts that failed to run (model server, sandbox, grader): they say nothing of the model.

    oec no longer writes such rollouts to trajectories.jsonl (see `oec.collect.attempts`); runs from before
    that still hold some, and this keeps them out of training data under their own name, not as unresolved.
    """

    name: str = field(default="failed_to_run", init=False)

    def check(self, trajectory: Trajectory) -> Verdict:
        if failed_to_run(trajectory):
            return Verdict.dropped(f"{trajectory.exit_reason}: {_short(trajectory.error or 'no detail')}")
        return Verdict.kept()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def ran() -> Ran:
    return Ran()


def resolved() -> Resolved:
    return Resolved()


def reward_hack() -> RewardHack:
    return RewardHack()


def repetition(max_repeat: int = 3, sources: Iterable[str] = ("student", "expert"),
               trained_only: bool = False) -> Repetition:
    return Repetition(max_repeat=max_repeat, sources=frozenset(sources), trained_only=trained_only)


def max_steps(limit: int) -> MaxSteps:
    return MaxSteps(limit=limit)


def exit_reasons(allowed: Iterable[str]) -> ExitReasons:
    return ExitReasons(allowed=frozenset(allowed))


def default_filters() -> list[Filter]:
    """What `oec filter` keeps with no options: rollouts that ran, resolved, no reward hacks, no loops."""
    return [ran(), resolved(), reward_hack(), repetition()]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Drop:
    id: str
    strategy: str
    rule: str
    reason: str


@dataclass
class FilterReport:
    """What survived and what each rule cost; a dropped trajectory is charged to the first rule that drops it."""

    rules: list[dict[str, Any]]
    kept: list[Trajectory] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    total: int = 0
    total_per_strategy: Counter[str] = field(default_factory=Counter)

    @property
    def dropped(self) -> dict[str, int]:
        """Count dropped per rule, every rule listed (0 when it dropped nothing), in rule order."""
        counts = {rule["name"]: 0 for rule in self.rules}
        for drop in self.drops:
            counts[drop.rule] += 1
        return counts

    @property
    def dropped_per_reason(self) -> dict[str, dict[str, int]]:
        """Per rule, drops counted by the reason's kind (the part of the reason before its first ':')."""
        table: dict[str, dict[str, int]] = {rule["name"]: {} for rule in self.rules}
        for drop in self.drops:
            kind = drop.reason.split(":", 1)[0].strip()
            table[drop.rule][kind] = table[drop.rule].get(kind, 0) + 1
        return table

    @property
    def dropped_per_strategy(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {rule["name"]: {} for rule in self.rules}
        for drop in self.drops:
            table[drop.rule][drop.strategy] = table[drop.rule].get(drop.strategy, 0) + 1
        return table

    @property
    def kept_per_strategy(self) -> dict[str, int]:
        counts = {strategy: 0 for strategy in sorted(self.total_per_strategy)}
        for trajectory in self.kept:
            counts[trajectory.strategy] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "total": self.total,
            "kept": len(self.kept),
            "total_per_strategy": dict(sorted(self.total_per_strategy.items())),
            "kept_per_strategy": self.kept_per_strategy,
            "dropped": self.dropped,
            "dropped_per_strategy": self.dropped_per_strategy,
            "dropped_per_reason": self.dropped_per_reason,
            "drops": [drop.__dict__ for drop in self.drops],
        }


def apply_filters(trajectories: Iterable[Trajectory], filters: Sequence[Filter]) -> FilterReport:
    """Run every trajectory through the rules in order; the first rule that drops it is charged."""
    names = [f.name for f in filters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"each rule may be given once; repeated: {', '.join(duplicates)}")
    report = FilterReport(rules=[f.describe() for f in filters])
    for trajectory in trajectories:
        report.total += 1
        report.total_per_strategy[trajectory.strategy] += 1
        for rule in filters:
            verdict = rule.check(trajectory)
            if not verdict.keep:
                report.drops.append(Drop(trajectory.id, trajectory.strategy, rule.name, verdict.reason or rule.name))
                break
        else:
            report.kept.append(trajectory)
    return report
