"""The report's plots as PNG data URIs (matplotlib's Agg canvas, no pyplot).

Figures are built on `matplotlib.figure.Figure` directly rather than through
pyplot, so rendering never touches a global backend or GUI state: the report
can be written from a server, a test or the pipeline without side effects.
Each function returns None when there is nothing to draw, and the page
leaves that plot out.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from oec.eval.evaluate import EvalSummary
from oec.report.summary import Rate, Summary

STUDENT = "#2563eb"
EXPERT = "#ea580c"
NEUTRAL = "#4b5563"


def _figure(width: float = 5.4, height: float = 3.4) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _data_uri(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rate_bars(ax: Any, labels: Sequence[str], rates: Sequence[Rate], color: str | Sequence[str]) -> None:
    """Bars of rates with 95% Wilson error bars and k/n written above each."""
    xs = list(range(len(labels)))
    values = [r.rate for r in rates]
    lows = [max(r.rate - r.interval[0], 0.0) for r in rates]  # clipped: the bounds carry float error at 0 and 1
    highs = [max(r.interval[1] - r.rate, 0.0) for r in rates]
    ax.bar(xs, values, color=color, alpha=0.85, width=0.6)
    ax.set_xlim(-0.8, len(xs) - 0.2)
    ax.errorbar(xs, values, yerr=[lows, highs], fmt="none", ecolor="black", capsize=4, linewidth=1)
    for x, r in zip(xs, rates):
        ax.annotate(f"{r.k}/{r.n}", (x, r.interval[1]), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=8)
    ax.set_xticks(xs, labels)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("resolve rate (95% Wilson)")


def resolve_by_strategy(summary: Summary) -> str | None:
    if not summary.strategies:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    _rate_bars(ax, [s.strategy for s in summary.strategies], [s.resolved for s in summary.strategies], NEUTRAL)
    ax.set_title("resolve rate by strategy")
    return _data_uri(fig)


def resolve_by_switch_step(summary: Summary) -> str | None:
    if not summary.switch_rates:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    labels = ["never" if k is None else str(k) for k in summary.switch_rates]
    _rate_bars(ax, labels, list(summary.switch_rates.values()), EXPERT)
    ax.set_xlabel("switch step k (student steps before the expert took over)")
    ax.set_title("OEC rollouts: resolve rate by switch step")
    return _data_uri(fig)


def length_by_source(summary: Summary) -> str | None:
    if not summary.strategies:
        return None
    fig = _figure(9.0, 3.4)
    left, right = fig.subplots(1, 2)
    names = [s.strategy for s in summary.strategies]
    student = [s.mean_student_steps for s in summary.strategies]
    expert = [s.mean_expert_steps for s in summary.strategies]
    xs = list(range(len(names)))
    left.bar(xs, student, color=STUDENT, label="student steps", width=0.6)
    left.bar(xs, expert, bottom=student, color=EXPERT, label="expert steps", width=0.6)
    left.set_xlim(-0.8, len(xs) - 0.2)
    left.set_xticks(xs, names)
    left.set_ylabel("mean steps per rollout")
    left.set_title("rollout length by source")
    left.legend(fontsize=8)
    # among the rollouts where that source acted: zeros (every bc rollout's student steps) would drown the rest
    all_student = [n for s in summary.strategies for n in s.student_steps if n]
    all_expert = [n for s in summary.strategies for n in s.expert_steps if n]
    top = max(all_student + all_expert + [1])
    bins = [b - 0.5 for b in range(1, top + 2)]
    right.hist(all_student, bins=bins, histtype="step", linewidth=2, color=STUDENT, label="student steps")
    right.hist(all_expert, bins=bins, histtype="step", linewidth=2, color=EXPERT, label="expert steps")
    from matplotlib.ticker import MaxNLocator

    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlim(0.5, top + 0.5)
    right.set_xlabel("steps in one rollout")
    right.set_ylabel("rollouts")
    right.set_title("per rollout, where that source acted")
    right.legend(fontsize=8)
    return _data_uri(fig)


def evaluation_rates(evaluations: list[tuple[str, EvalSummary]]) -> str | None:
    if not evaluations:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    _rate_bars(ax, [label for label, _ in evaluations], [Rate(s.resolved, s.n) for _, s in evaluations], STUDENT)
    ax.set_title("evaluation: resolve rate on held-out tasks")
    return _data_uri(fig)


def covariate_shift(shift: dict[str, Any]) -> str | None:
    """Frechet distance and KL per turn index, each with its paired-bootstrap band."""
    turns = [t for t in shift.get("turns", []) if t.get("frechet") is not None]
    if not turns:
        return None
    fig = _figure(9.0, 3.4)
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "frechet", "Frechet distance"), (axes[1], "kl", "KL estimate")):
        xs = [t["turn"] for t in turns]
        ys = [t[key] for t in turns]
        ax.plot(xs, ys, marker="o", color=NEUTRAL)
        bands = [(t["turn"], *t[f"{key}_ci"]) for t in turns if t.get(f"{key}_ci")]
        if bands:
            ax.fill_between([b[0] for b in bands], [b[1] for b in bands], [b[2] for b in bands],
                            color=NEUTRAL, alpha=0.2, label="95% paired bootstrap")
            ax.legend(fontsize=8)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("turn index")
        ax.set_title(f"{title}: {shift.get('student_strategy', 'student')} vs {shift.get('expert_strategy', 'expert')}")
        ax.set_ylim(bottom=0)
    return _data_uri(fig)
