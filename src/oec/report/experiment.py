"""The experiment page of `oec view EXPERIMENT_DIR`: the arms table, resolve rates with intervals, paired
differences and training curves, from experiment.json (written by `oec experiment`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from oec import __version__
from oec.report.assets import CSP, CSS
from oec.report.page import _table
from oec.report.plots import NEUTRAL, STUDENT, _data_uri, _figure, _rate_bars
from oec.report.summary import Rate
from oec.report.trajectory_html import esc

EXPERIMENT_JSON = "experiment.json"


def is_experiment(path: Path) -> bool:
    return (path / EXPERIMENT_JSON).is_file()


def _f(value: float) -> str:
    return f"{value:.1%}"


def arms_section(result: dict[str, Any]) -> str:
    rows = []
    for row in result["arms"]:
        d, t = row.get("data") or {}, row.get("train") or {}
        used = f"{d['used']} of {d['kept']}" if d else "-"
        calls = f"{d['expert_calls_used']} of {d['expert_calls_collected']}" if d else "-"
        if "eval" not in row:  # kept nothing to train on: reported, not evaluated
            rows.append([esc(row["arm"]), esc(row.get("no_data", "no data")), "-", "-", "-", "-", used, calls, "-",
                         "-", "-", "-", "-"])
            continue
        e, p = row["eval"], row["process"]
        rows.append([esc(row["arm"]), esc(row["model"]), _f(e["rate"]), f"[{_f(e['ci_low'])}, {_f(e['ci_high'])}]",
                     str(e["n"]), str(e["not_run"]), used, calls, str(t.get("supervised_tokens") or "-"),
                     _f(p["valid_action_rate"]), _f(p["submitted_rate"]),
                     _f(p["edited_fix_file_rate"]), _f(p["ran_tests_rate"])])
    header = ["arm", "model", "resolve rate", "95% Wilson", "n", "failed to run", "trajectories used",
              "expert calls used (of collected)", "supervised tokens", "valid actions", "submitted",
              "edited the fix's file", "ran tests"]
    return _table(header, rows, numeric=set(range(2, 13)))


def pairs_section(result: dict[str, Any]) -> str:
    rows = [[esc(p["a"]), esc(p["b"]), str(p["pairs"]), str(p["only_a"]), str(p["only_b"]),
             f"{p['mcnemar_p']:.3g}", f"{p['diff']:+.1%}", f"[{p['ci_low']:+.1%}, {p['ci_high']:+.1%}]"]
            for p in result["pairs"]]
    return _table(["A", "B", "pairs", "only A resolved", "only B resolved", "McNemar exact p", "A - B",
                   "95% paired bootstrap"], rows, numeric=set(range(2, 8)))


def rates_plot(result: dict[str, Any]) -> str | None:
    arms = [r for r in result["arms"] if "eval" in r]
    if not arms:
        return None
    fig = _figure(max(5.4, 1.0 * len(arms)), 3.4)
    ax = fig.add_subplot()
    _rate_bars(ax, [r["arm"] for r in arms], [Rate(r["eval"]["resolved"], r["eval"]["n"]) for r in arms], STUDENT)
    ax.tick_params(axis="x", labelrotation=20)
    ax.set_title("held-out resolve rate per arm")
    return _data_uri(fig)


def curves_plot(result: dict[str, Any]) -> str | None:
    curves = [(r["arm"], (r.get("train") or {}).get("loss_curve") or []) for r in result["arms"]]
    curves = [(name, curve) for name, curve in curves if curve]
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for name, curve in curves:
        ax.plot([p.get("step", i) for i, p in enumerate(curve)], [p.get("loss") for p in curve], label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    return _data_uri(fig)


def build_experiment_page(root: Path) -> str:
    result = json.loads((root / EXPERIMENT_JSON).read_text(encoding="utf-8"))
    budget = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in result["budget"].items())
    train = result.get("train") or {}
    train_line = ("training skipped (arms evaluated as configured)" if train.get("skip") else
                  " · ".join(f"{esc(k)}: {esc(train.get(k))}" for k in ("max_steps", "epochs", "lr", "lora")))
    figures = [("resolve rate per arm", rates_plot(result)), ("training curves", curves_plot(result))]
    plots = "".join(f'<figure><img alt="{esc(t)}" src="{uri}"><figcaption>{esc(t)}</figcaption></figure>'
                    for t, uri in figures if uri) or f'<p class="muted" style="color:{NEUTRAL}">nothing to plot</p>'
    body = (f"<main><h1>oec experiment: {esc(root.resolve().name)}</h1>"
            f'<p class="muted">oec {esc(__version__)} · held-out tasks: {esc(result.get("held_out"))}</p>'
            f'<p class="muted">data budget: {budget} · {train_line}</p>'
            "<h2>arms</h2>" + arms_section(result)
            + "<h2>paired differences</h2><p class=\"muted\">same (task, sample) pairs; McNemar's exact test on "
              "the discordant pairs; bootstrap over pairs, seeded</p>" + pairs_section(result)
            + "<h2>plots</h2>" + plots + "</main>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>oec experiment: {esc(root.resolve().name)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def write_experiment_page(root: Path, out: Path | None = None) -> Path:
    target = out if out is not None else root / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(build_experiment_page(root), encoding="utf-8")
    os.replace(tmp, target)
    return target
