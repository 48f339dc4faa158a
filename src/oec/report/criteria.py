"""Switch criteria side by side: what each one costs in expert calls and what it buys in kept rollouts.

Divergence switching exists to spend expert calls where the student needs
correcting. Whether it does is a comparison against a random switch step on
the same tasks: when the expert took over (switch step distribution), how
much it was asked (expert calls per rollout, judge calls included, as the
episode counts them), how often the result was resolved (with a 95% Wilson
interval), and how many rollouts survive the default filters per expert call,
which is the number that prices training data.

`compare_criteria` is pure (trajectories in, rows out, nothing read or
printed) so the CLI table, the HTML report and tests share one computation;
`criteria_table` renders rows with rich.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from oec.collect.records import Trajectory
from oec.data.filters import Filter, apply_filters, default_filters
from oec.eval.stats import wilson_interval

__all__ = ["CriterionRow", "compare_criteria", "criteria_table", "quantile"]


@dataclass
class CriterionRow:
    """One switch criterion (a label: usually a run directory) summarized; `to_dict` is JSON-ready.

    Switch statistics cover rollouts where the expert acted (`switched`); a rollout the student finished
    alone has no switch step. `kept_per_expert_call` is None when no expert call was made.
    """

    label: str
    criteria: list[str]
    rollouts: int
    switched: int
    switch_mean: float | None
    switch_median: float | None
    switch_p25: float | None
    switch_p75: float | None
    switch_max: int | None
    expert_calls: int
    expert_calls_per_rollout: float
    resolved: int
    resolve_rate: float
    resolve_low: float
    resolve_high: float
    kept: int
    kept_per_expert_call: float | None
    reasons: dict[str, int] = field(default_factory=dict)  # switch_reason.detector counts ("cap" included)
    checks: dict[str, int] = field(default_factory=dict)  # divergence_checks summed over rollouts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default); values non-empty."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _row(label: str, trajectories: list[Trajectory], filters: Sequence[Filter]) -> CriterionRow:
    n = len(trajectories)
    steps = [t.switch_step for t in trajectories if t.switch_step is not None]
    expert_calls = sum(t.usage["expert"].calls for t in trajectories if "expert" in t.usage)
    resolved = sum(t.resolved for t in trajectories)
    low, high = wilson_interval(resolved, n)
    kept = len(apply_filters(trajectories, filters).kept)
    checks: Counter[str] = Counter()
    for t in trajectories:
        checks.update(t.divergence_checks)
    reasons = Counter(t.switch_reason.detector for t in trajectories if t.switch_reason is not None)
    return CriterionRow(
        label=label,
        criteria=sorted({t.switch_criterion for t in trajectories if t.switch_criterion}),
        rollouts=n,
        switched=len(steps),
        switch_mean=sum(steps) / len(steps) if steps else None,
        switch_median=quantile(steps, 0.5) if steps else None,
        switch_p25=quantile(steps, 0.25) if steps else None,
        switch_p75=quantile(steps, 0.75) if steps else None,
        switch_max=max(steps) if steps else None,
        expert_calls=expert_calls,
        expert_calls_per_rollout=expert_calls / n if n else 0.0,
        resolved=resolved,
        resolve_rate=resolved / n if n else 0.0,
        resolve_low=low,
        resolve_high=high,
        kept=kept,
        kept_per_expert_call=kept / expert_calls if expert_calls else None,
        reasons=dict(sorted(reasons.items())),
        checks=dict(sorted(checks.items())),
    )


def compare_criteria(trajectories_by_label: dict[str, list[Trajectory]],
                     filters: Sequence[Filter] | None = None) -> list[CriterionRow]:
    """One row per label, in the order given. `filters` decide "kept" (default: `oec filter`'s defaults,
    resolved and repetition 3). Pure: the trajectories are not modified."""
    rules = list(filters) if filters is not None else default_filters()
    return [_row(label, list(items), rules) for label, items in trajectories_by_label.items()]


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def criteria_table(rows: Sequence[CriterionRow], title: str = "switch criteria") -> Table:
    """The rows as a rich table: one line per criterion, the numbers that decide between them; the specs
    each label ran with go in the caption."""
    table = Table(title=title)
    for name in ("criterion", "rollouts", "switched", "switch step\nmean, median [IQR]", "expert calls\nper rollout",
                 "resolved\n[95% CI]", "kept", "kept per\nexpert call", "switch reasons"):
        table.add_column(name, justify="left" if name in ("criterion", "switch reasons") else "right",
                         overflow="fold")
    for r in rows:
        switch = "-" if r.switch_mean is None else (
            f"{r.switch_mean:.1f}, {r.switch_median:g} [{r.switch_p25:g}-{r.switch_p75:g}]")
        resolved = f"{r.resolved}/{r.rollouts} {r.resolve_rate:.0%} [{r.resolve_low:.0%}-{r.resolve_high:.0%}]"
        reasons = ", ".join(f"{k} {v}" for k, v in r.reasons.items()) or "-"
        table.add_row(r.label, str(r.rollouts), str(r.switched), switch, _num(r.expert_calls_per_rollout),
                      resolved, str(r.kept), _num(r.kept_per_expert_call, 3), reasons)
    table.caption = "; ".join(f"{r.label}: {', '.join(r.criteria)}" for r in rows if r.criteria) or None
    return table
