"""The report's numbers and plots, without a browser: rates at 0 and 1, switch steps, usage totals."""

from __future__ import annotations

import base64

from oec.collect.records import ModelUsage, Trajectory
from oec.grading.grader import GradeResult
from oec.report import plots
from oec.report.summary import summarize


def rollout(n: int, strategy: str, solved: bool, switch: int | None = None, cost: float | None = 0.25) -> Trajectory:
    return Trajectory(id=f"t__{n}/{strategy}/0", instance_id=f"t__{n}", strategy=strategy, sample_index=0, run_seed=0,
                      seed=0, switch_step=switch, exit_reason="submitted",
                      reward=GradeResult(instance_id=f"t__{n}", resolved=solved,
                                         status="resolved" if solved else "unresolved"),
                      usage={"expert": ModelUsage(spec="oracle", calls=2, prompt_tokens=10, cost_usd=cost)})


def test_rates_of_zero_and_one_plot_and_totals_add_up() -> None:
    """Wilson bounds at 0/n and n/n carry float error (1e-17 above 0, 1 - 1e-16): the error bars must not break."""
    runs = ([rollout(i, "bc", False) for i in range(6)] + [rollout(i, "on-policy", True) for i in range(10)]
            + [rollout(i, "oec", i % 2 == 0, switch=i % 3) for i in range(7)] + [rollout(99, "oec", False, cost=None)])
    summary = summarize(runs, None)
    assert [s.strategy for s in summary.strategies] == ["bc", "on-policy", "oec"]
    assert (summary.strategies[0].resolved.k, summary.strategies[0].resolved.n) == (0, 6)
    assert list(summary.switch_rates) == [0, 1, 2, None]
    assert (summary.switch_rates[0].k, summary.switch_rates[0].n) == (2, 3)  # i = 0, 3, 6; even ones solved
    [oracle] = summary.models
    assert oracle.calls == 2 * len(runs) and oracle.cost_usd is None  # one unknown price makes the total unknown
    for uri in (plots.resolve_by_strategy(summary), plots.resolve_by_switch_step(summary),
                plots.length_by_source(summary)):
        assert uri is not None and uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_to_draw_gives_no_plot() -> None:
    summary = summarize([], None)
    assert plots.resolve_by_strategy(summary) is None and plots.resolve_by_switch_step(summary) is None
    assert plots.evaluation_rates([]) is None and plots.covariate_shift({"turns": []}) is None
