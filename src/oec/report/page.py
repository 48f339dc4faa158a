"""Assemble the report page and write it: `write_report` is the entry point for the CLI and the pipeline.

The page is built server-side as plain HTML (every table and every turn is
already in the file); the inline script only filters and folds. That keeps
the file readable with scripts off, greppable, and testable by parsing it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oec import __version__
from oec.collect.attempts import failed_to_run
from oec.collect.attempts import not_run as attempts_not_run
from oec.collect.records import Trajectory
from oec.eval.evaluate import EvalSummary
from oec.report import plots
from oec.report.assets import CSP, CSS, JS
from oec.report.layout import (
    REPORT_FILE,
    RunLayout,
    load_evaluations,
    load_trajectories,
    resolve_layout,
)
from oec.report.summary import Rate, Summary, load_filter_report, summarize
from oec.report.trajectory_html import esc, render_trajectory


def _pct(rate: Rate) -> tuple[str, str]:
    low, high = rate.interval
    return f"{rate.rate:.1%}", f"[{low:.1%}, {high:.1%}]"


def _table(header: list[str], rows: list[list[str]], numeric: frozenset[int] | set[int] = frozenset()) -> str:
    """A table from already-escaped cells; columns in `numeric` are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def strategies_section(summary: Summary) -> str:
    rows = []
    for s in summary.strategies:
        rate, interval = _pct(s.resolved)
        reasons = ", ".join(f"{esc(k)} {v}" for k, v in s.exit_reasons.most_common())
        rows.append([esc(s.strategy), str(s.resolved.n), str(s.resolved.k), rate, interval,
                     f"{s.mean_student_steps:.1f}", f"{s.mean_expert_steps:.1f}", reasons, str(s.not_run)])
    rate, interval = _pct(summary.resolved)
    rows.append(["<b>all</b>", f"<b>{summary.total}</b>", f"<b>{summary.resolved.k}</b>", rate, interval, "", "", "",
                 f"<b>{sum(s.not_run for s in summary.strategies)}</b>"])
    return "<h3>rollouts by strategy</h3>" + _table(
        ["strategy", "rollouts", "resolved", "rate", "95% Wilson", "mean student steps", "mean expert steps",
         "exit reasons", "failed to run"], rows, numeric={1, 2, 3, 5, 6, 8})


def filter_section(summary: Summary) -> str:
    report = summary.filter_report
    if report is None:
        return ('<h3>filter</h3><p class="muted">no filter_report.json: run <code>oec filter RUN_DIR</code> to see '
                "what would be kept for training and why the rest was dropped.</p>")
    strategies = sorted(report.get("total_per_strategy", {}))
    per_strategy = report.get("dropped_per_strategy", {})
    rows = [["rollouts", *(str(report.get("total_per_strategy", {}).get(s, 0)) for s in strategies), str(report.get("total", 0))]]
    for rule, count in report.get("dropped", {}).items():
        rows.append([f"dropped: {esc(rule)}", *(str(per_strategy.get(rule, {}).get(s, 0)) for s in strategies),
                     str(count)])
    kept = report.get("kept_per_strategy", {})
    rows.append(["<b>kept</b>", *(f"<b>{kept.get(s, 0)}</b>" for s in strategies), f"<b>{report.get('kept', 0)}</b>"])
    rules = ", ".join(esc(json.dumps(r, sort_keys=True)) for r in report.get("rules", []))
    out = [f'<h3>filter</h3><p class="muted">rules, charged in order: {rules or "none"}</p>',
           _table(["", *(esc(s) for s in strategies), "all"], rows, numeric=set(range(1, len(strategies) + 2)))]
    drops = report.get("drops", [])
    if drops:
        drop_rows = [[f"<code>{esc(d.get('id', ''))}</code>", esc(d.get("rule", "")), esc(d.get("reason", ""))]
                     for d in drops if isinstance(d, dict)]
        out.append(f"<details><summary>{len(drop_rows)} dropped rollouts and why</summary>"
                   + _table(["rollout", "rule", "reason"], drop_rows) + "</details>")
    return "".join(out)


def models_section(summary: Summary) -> str:
    if not summary.models:
        return '<h3>tokens and cost by model</h3><p class="muted">no usage recorded</p>'
    rows = [[esc(m.spec), esc(", ".join(sorted(m.roles))), str(m.calls), f"{m.prompt_tokens:,}",
             f"{m.completion_tokens:,}", "unknown" if m.cost_usd is None else f"${m.cost_usd:,.4f}"]
            for m in summary.models]
    return "<h3>tokens and cost by model</h3>" + _table(
        ["model", "role", "calls", "prompt tokens", "completion tokens", "cost"], rows, numeric={2, 3, 4, 5})


def evaluations_section(evaluations: list[tuple[str, EvalSummary]]) -> str:
    if not evaluations:
        return ""
    rows = []
    for label, s in evaluations:
        rate, interval = _pct(Rate(s.resolved, s.n))
        rows.append([esc(label), esc(s.model), esc(s.data_source or "-"), str(s.n), str(s.resolved), rate, interval,
                     str(s.not_run)])
    return "<h2>evaluations</h2>" + _table(["eval", "model", "data source", "n", "resolved", "rate", "95% Wilson",
                                            "failed to run"], rows, numeric={3, 4, 5, 7})


def criteria_section(groups: dict[str, list[Trajectory]]) -> str:
    """Switch criteria side by side (issue: divergence vs uniform switching), from `report.criteria`."""
    from oec.report.criteria import compare_criteria

    groups = {label: items for label, items in groups.items() if items}
    if not groups:
        return ""
    rows = []
    for r in compare_criteria(groups):
        switch = "-" if r.switch_mean is None else f"{r.switch_mean:.1f}, {r.switch_median:g} [{r.switch_p25:g}-{r.switch_p75:g}]"
        rate, interval = _pct(Rate(r.resolved, r.rollouts))
        per_call = "-" if r.kept_per_expert_call is None else f"{r.kept_per_expert_call:.3f}"
        reasons = ", ".join(f"{k} {v}" for k, v in r.reasons.items()) or "-"
        rows.append([esc(r.label), str(r.rollouts), esc(switch), f"{r.expert_calls_per_rollout:.1f}", rate, interval,
                     str(r.kept), per_call, esc(reasons)])
    header = ["switch criterion", "rollouts", "switch step: mean, median [IQR]", "expert calls / rollout",
              "resolved", "95% Wilson", "kept", "kept / expert call", "switch reasons"]
    return "<h2>switch criteria</h2>" + _table(header, rows, numeric={1, 3, 6, 7})


def criteria_groups(trajectories: list[Trajectory], others: dict[str, list[Trajectory]]) -> dict[str, list[Trajectory]]:
    """This run's switched rollouts grouped by switch criterion, plus other runs' (`oec view --compare`)."""
    groups: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        if t.switch_criterion:
            groups.setdefault(t.switch_criterion, []).append(t)
    for label, items in others.items():
        for t in items:
            if t.switch_criterion:
                groups.setdefault(f"{label}: {t.switch_criterion}", []).append(t)
    return groups


def shift_section(shift: dict[str, Any] | None) -> str:
    if not shift:
        return ""
    def cell(value: Any, ci: Any) -> str:
        if value is None:
            return "-"
        interval = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
        return f"{value:.3g}{interval}"
    rows = [[str(t["turn"]), str(t.get("n_student", "")), str(t.get("n_expert", "")),
             cell(t.get("frechet"), t.get("frechet_ci")), cell(t.get("kl"), t.get("kl_ci"))]
            for t in shift.get("turns", [])]
    method = shift.get("method", {})
    notes = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in method.items())
    return (f"<h2>covariate shift ({esc(shift.get('student_strategy', '?'))} vs "
            f"{esc(shift.get('expert_strategy', '?'))}, {esc(shift.get('tasks', '?'))} paired tasks)</h2>"
            + _table(["turn", "student turns", "expert turns", "Frechet [95% CI]", "KL [95% CI]"], rows,
                     numeric={0, 1, 2}) + f"<details><summary>method</summary><ul>{notes}</ul></details>")


def plots_section(summary: Summary, evaluations: list[tuple[str, EvalSummary]], shift: dict[str, Any] | None) -> str:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return '<h2>plots</h2><p class="muted">matplotlib is not installed: pip install "oec[report]"</p>'
    makers: list[tuple[str, Callable[[], str | None]]] = [
        ("resolve rate by strategy, 95% Wilson intervals", lambda: plots.resolve_by_strategy(summary)),
        ("OEC rollouts: resolve rate by switch step", lambda: plots.resolve_by_switch_step(summary)),
        ("rollout length by source", lambda: plots.length_by_source(summary)),
        ("evaluations side by side", lambda: plots.evaluation_rates(evaluations)),
        ("covariate shift per turn (from shift.json)", lambda: plots.covariate_shift(shift or {})),
    ]
    figures = []
    for caption, make in makers:
        uri = make()
        if uri:
            figures.append(f'<figure><img alt="{esc(caption)}" src="{uri}"><figcaption>{esc(caption)}</figcaption>'
                           "</figure>")
    return '<h2>plots</h2><div class="plots">' + "".join(figures) + "</div>"


def trajectories_section(trajectories: list[Trajectory], summary: Summary, limit: int | None) -> str:
    strategies = [s.strategy for s in summary.strategies]
    filtered = summary.filter_report is not None
    options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in strategies)
    kept_select = ('<label>filter <select id="f-kept"><option value="">all</option><option value="yes">kept</option>'
                   '<option value="no">filtered out</option></select></label>') if filtered else ""
    controls = ('<div class="controls">'
                f'<label>strategy <select id="f-strategy"><option value="">all</option>{options}</select></label>'
                '<label>resolved <select id="f-resolved"><option value="">all</option><option value="yes">resolved'
                '</option><option value="no">unresolved</option></select></label>'
                f'{kept_select}<label>instance <input id="f-text" type="search" placeholder="id contains"></label>'
                '<button id="expand-all" type="button">expand all</button>'
                '<button id="collapse-all" type="button">collapse all</button>'
                f'<span id="shown-count" class="muted">{len(trajectories)} rollouts</span>'
                '<span class="legend">turns: <span class="badge student">STUDENT</span>'
                '<span class="badge expert">EXPERT</span></span></div>')
    shown = trajectories if limit is None else trajectories[:limit]
    note = "" if len(shown) == len(trajectories) else (
        f'<p class="muted">listing the first {len(shown)} of {len(trajectories)} rollouts (--limit)</p>')
    items = "".join(render_trajectory(t, summary.drops.get(t.id), filtered, f"traj-{n}") for n, t in enumerate(shown))
    return f'<h2>trajectories</h2>{controls}{note}<div id="trajectories">{items}</div>'


def build_report(layout: RunLayout, limit: int | None = None,
                 compare: dict[str, list[Trajectory]] | None = None) -> str:
    """The whole page as one string: summary, plots, and every trajectory."""
    trajectories, torn = load_trajectories(layout)
    done = {t.id for t in trajectories if not failed_to_run(t)}
    not_run = Counter(a.strategy for a in attempts_not_run(layout.collect, done).values())
    summary = summarize(trajectories, load_filter_report(layout.filter_report), not_run)
    evaluations = load_evaluations(layout)
    shift = json.loads(layout.shift_file.read_text()) if layout.shift_file else None
    config = layout.config()
    config_line = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in config.items()
                             if k in ("student", "expert", "strategies", "switch", "samples", "seed", "tasks"))
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<main><h1>oec report: {esc(layout.root.resolve().name)}</h1>"
            f'<p class="muted">{esc(layout.collect.resolve())} · generated {generated} by oec {esc(__version__)}</p>'
            + (f'<p class="muted">{config_line}</p>' if config_line else "")
            + ('<p class="format-error">the last line of trajectories.jsonl is still being written (a run in '
               "progress?); it was left out</p>" if torn else "")
            + "<h2>summary</h2>" + strategies_section(summary) + filter_section(summary) + models_section(summary)
            + criteria_section(criteria_groups(trajectories, compare or {}))
            + evaluations_section(evaluations) + shift_section(shift) + plots_section(summary, evaluations, shift)
            + trajectories_section(trajectories, summary, limit) + "</main>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>oec report: {esc(layout.root.resolve().name)}</title><style>{CSS}</style></head>"
            f"<body>{body}<script>{JS}</script></body></html>\n")


def write_report(run_dir: Path, out: Path | None = None, *, eval_dirs: list[Path] | None = None,
                 limit: int | None = None, compare_dirs: list[Path] | None = None) -> Path:
    """Write RUN_DIR's report (default RUN_DIR/report.html) atomically and return its path.

    RUN_DIR is a collect directory or an `oec run` directory; `eval_dirs` adds
    evaluation folders (as `oec compare` takes them) to the run's own; `compare_dirs` adds other runs whose
    switch criteria are tabled beside this run's.
    """
    layout = resolve_layout(run_dir, eval_dirs)
    compare = {d.name: load_trajectories(resolve_layout(d, []))[0] for d in compare_dirs or []}
    target = out if out is not None else layout.root / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(layout, limit, compare)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
