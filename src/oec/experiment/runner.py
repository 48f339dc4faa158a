"""`oec experiment`: every arm through the pipeline's own stages, then paired statistics on one held-out set.

Layout of the experiment directory:

    tasks-train.jsonl, tasks-held-out.jsonl
    collect/                       one collection of every strategy the arms need (resumable)
    arms/<arm>/filtered.jsonl      the arm's kept rollouts after its filter and the data budget
    arms/<arm>/sft.<format>.jsonl  its training data; arms/<arm>/checkpoint/ its model
    arms/<arm>/eval/               its student alone on the held-out tasks (eval.json, trajectories.jsonl)
    experiment.json                the arms table, budgets, paired differences: what `oec view` renders

Each step is skipped when its output is current (the pipeline's is_current), so a killed experiment resumes
arm by arm. Every trained arm gets the same [train] section (steps, hyperparameters) and a data budget:
equal kept trajectories, or equal expert calls; both counts are recorded per arm.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oec.cli.collect import role_options
from oec.cli.common import invoke, repo_index
from oec.cli.export_cmd import export_command
from oec.cli.filter_cmd import FILTER_REPORT, FILTERED, build_filters
from oec.collect.episode import EpisodeLimits
from oec.collect.records import Trajectory
from oec.collect.run_dir import TRAJECTORIES
from oec.collect.attempts import failed_to_run
from oec.data.export import read_trajectories, write_text_atomic
from oec.data.filters import apply_filters
from oec.eval.evaluate import EVAL_SUMMARY, evaluate, load_summary
from oec.eval.stats import discordant, mcnemar_exact, paired_bootstrap
from oec.experiment.arms import ARMS, Arm
from oec.experiment.config import ExperimentConfig
from oec.eval.process import process_metrics, rollouts_that_ran
from oec.models.portable import release_providers
from oec.pipeline.config import PipelineConfig, TasksSection
from oec.pipeline.run import PipelineError, _collect, _train, _write_tasks, is_current
from oec.tasks.loaders import load_tasks_strict

EXPERIMENT_JSON = "experiment.json"


class ExperimentError(PipelineError):
    """The experiment cannot go on; the message says why."""


@dataclass
class ArmData:
    arm: Arm
    kept: list[Trajectory] = field(default_factory=list)
    used: list[Trajectory] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    collected: int = 0  # rollouts of its strategy that ran
    collected_expert_calls: int = 0  # what its collection cost in expert calls (kept or not)


def _pipeline_config(config: ExperimentConfig, strategies: list[str]) -> PipelineConfig:
    """The pipeline's view of the experiment, so its collect and train stages run unchanged."""
    return PipelineConfig(run=config.run, tasks=TasksSection(repos=config.tasks.repos), models=config.models,
                          collect=config.collect.model_copy(update={"strategies": strategies}),
                          filter=config.filter, export=config.export, train=config.train)


def _expert_calls(trajectories: list[Trajectory]) -> int:
    return sum(t.usage["expert"].calls for t in trajectories if "expert" in t.usage)


def _seeded_order(items: list[Trajectory], seed: int) -> list[Trajectory]:
    return sorted(items, key=lambda t: hashlib.sha256(f"{seed}:{t.id}".encode()).digest())


def _filter_arms(config: ExperimentConfig, arms: list[Arm], collected: list[Trajectory]) -> dict[str, ArmData]:
    f = config.filter
    reasons = ",".join(f.exit_reasons) if f.exit_reasons is not None else None
    data = {}
    for arm in arms:
        rules = build_filters(f.resolved, f.max_repeat, f.max_steps, reasons, f.reward_hack,
                              repeat_trained_only=arm.repetition == "trained")
        mine = [t for t in collected if t.strategy == arm.strategy]
        report = apply_filters(mine, rules)
        data[arm.name] = ArmData(arm, _seeded_order(report.kept, config.run.seed), report=report.to_json(),
                                 collected=len(mine), collected_expert_calls=_expert_calls(mine))
    return data


def apply_budget(config: ExperimentConfig, data: dict[str, ArmData]) -> dict:
    """Cut every arm's kept rollouts (in a seeded order) to the common budget; returns what the budget was.

    An arm that kept nothing (on-policy rejection sampling when the base student never resolves a task) sets
    no budget: it is reported as having no data, and the others are not cut to zero for it."""
    cap = config.budget.max_trajectories
    funded = {name: d for name, d in data.items() if d.kept}
    no_data = sorted(set(data) - set(funded))
    if config.budget.mode == "trajectories":
        n = min([len(d.kept) for d in funded.values()] + ([cap] if cap else []), default=0)
        for d in funded.values():
            d.used = d.kept[:n]
        return {"mode": "trajectories", "trajectories": n, "no_data": no_data}
    costs = [_expert_calls(d.kept) for d in funded.values() if _expert_calls(d.kept) > 0]
    calls = min(costs, default=0)
    for d in funded.values():
        used, spent = [], 0
        for t in d.kept[:cap]:
            if spent + _expert_calls([t]) > calls:
                break
            used.append(t)
            spent += _expert_calls([t])
        d.used = used
    return {"mode": "expert_calls", "expert_calls": calls, "no_data": no_data}


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def _prepare_arm_data(config: ExperimentConfig, d: ArmData, collect_dir: Path, arm_dir: Path,
                      train_file: Path, console: Console) -> Path:
    """The arm's filtered.jsonl (its budgeted share) and its SFT file, through `oec export` itself."""
    arm_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(arm_dir / "config.json", (collect_dir / "config.json").read_text(encoding="utf-8"))
    _write_if_changed(arm_dir / FILTERED, "".join(t.model_dump_json() + "\n" for t in d.used))
    _write_if_changed(arm_dir / FILTER_REPORT, json.dumps(d.report, indent=2) + "\n")
    sft = arm_dir / f"sft.{config.export.format}.jsonl"
    if is_current(sft, arm_dir / FILTERED):
        console.print(f"up to date: {sft}")
        return sft
    invoke(export_command, run_dir=arm_dir, fmt=config.export.format, out=sft, mix=None, seed=config.run.seed,
           allow_short=True, tasks_file=train_file, train_student_turns=d.arm.train_student_turns)
    return sft


def _eval_model(config: ExperimentConfig, arm: Arm, checkpoint: Path | None) -> str:
    if arm.name in config.eval_models:
        return config.eval_models[arm.name]
    return f"hf:{checkpoint}" if checkpoint is not None else config.models.student


def _evaluate_arm(config: ExperimentConfig, arm: Arm, model: str, held_out: list, held_out_file: Path,
                  arm_dir: Path, console: Console, newer_than: Path) -> None:
    """The arm's student alone on the held-out tasks, the same limits for every arm. Rerun (it resumes) while
    rollouts that failed to run remain to be retried."""
    eval_dir = arm_dir / "eval"
    if is_current(eval_dir / EVAL_SUMMARY, newer_than, held_out_file) and load_summary(eval_dir).not_run == 0:
        console.print(f"up to date: {eval_dir}")
        return
    m, c, e = config.models, config.collect, config.eval
    console.print(f"evaluating {arm.name}: {model}")
    asyncio.run(evaluate(
        model, held_out, repo_index(config.tasks.repos), eval_dir, samples=e.samples, concurrency=e.concurrency,
        seed=config.run.seed, options=role_options(
            "student", base_url=m.student_base_url if not arm.trained else None,
            max_tokens=m.student_max_tokens or m.max_tokens, temperature=e.temperature, fmt=m.student_format,
            seed=config.run.seed, concurrency=e.concurrency),
        limits=EpisodeLimits(max_calls_per_model=e.max_calls, max_observation_chars=c.max_observation_chars,
                             max_format_errors=e.max_format_errors),
        command_timeout=c.command_timeout, data_source=arm.strategy or "none", label=arm.name, console=console,
        env_backend=config.run.env, max_attempts=e.max_attempts))
    release_providers()  # the next arm loads its own checkpoint; this one's weights and caches must not stay


def _train_record(checkpoint: Path | None) -> dict:
    file = checkpoint / "oec_train.json" if checkpoint is not None else None
    if file is None or not file.is_file():
        return {}
    summary = json.loads(file.read_text())
    return {key: summary.get(key) for key in ("steps", "supervised_tokens", "records_used", "hyperparameters",
                                              "final_loss", "loss_curve")}


def _outcomes(eval_dir: Path) -> dict[tuple[str, int], bool]:
    return {(t.instance_id, t.sample_index): t.resolved for t in rollouts_that_ran(eval_dir)}


def paired_differences(outcomes: dict[str, dict[tuple[str, int], bool]], resamples: int, seed: int) -> list[dict]:
    """Every pair of arms on the (task, sample) pairs both ran: McNemar's exact p and a bootstrap interval."""
    rows = []
    for a, b in itertools.combinations(outcomes, 2):
        keys = sorted(set(outcomes[a]) & set(outcomes[b]))
        xs, ys = [outcomes[a][k] for k in keys], [outcomes[b][k] for k in keys]
        only_a, only_b = discordant(xs, ys)
        diff, low, high = paired_bootstrap(xs, ys, resamples=resamples, seed=seed)
        rows.append({"a": a, "b": b, "pairs": len(keys), "only_a": only_a, "only_b": only_b,
                     "mcnemar_p": mcnemar_exact(only_a, only_b), "diff": diff, "ci_low": low, "ci_high": high})
    return rows


def _load_tasks(config: ExperimentConfig, out: Path) -> tuple[Path, Path, list, list]:
    from oec.tasks.bundled import BUNDLED_TASKS_FILE

    train = load_tasks_strict(config.tasks.train or BUNDLED_TASKS_FILE)
    held_out = load_tasks_strict(config.tasks.held_out)
    overlap = sorted({t.instance_id for t in train} & {t.instance_id for t in held_out})
    if overlap and config.tasks.train is not None:  # the bundled suite: its held-out tasks are left out
        raise ExperimentError(f"{config.tasks.held_out}: {len(overlap)} held-out task(s) also in the training "
                              f"tasks ({', '.join(overlap[:5])}); split them with `oec synth-split`")
    held_out_ids = {t.instance_id for t in held_out}
    train = [t for t in train if t.instance_id not in held_out_ids]
    train_file, held_out_file = out / "tasks-train.jsonl", out / "tasks-held-out.jsonl"
    _write_tasks(train_file, train)
    _write_tasks(held_out_file, held_out)
    return train_file, held_out_file, train, held_out


def _collect_all(config: ExperimentConfig, arms: list[Arm], train_file: Path, out: Path,
                 console: Console) -> tuple[Path, list[Trajectory]]:
    strategies = sorted({a.strategy for a in arms if a.strategy is not None})
    collect_dir = out / "collect"
    if strategies:
        _collect(_pipeline_config(config, strategies), train_file, collect_dir, console)
    collected = read_trajectories(collect_dir / TRAJECTORIES).trajectories if strategies else []
    return collect_dir, [t for t in collected if not failed_to_run(t)]


def run_experiment(config: ExperimentConfig, console: Console) -> dict:
    """Every arm: data (shared collection, own filter + budget + export), training, held-out evaluation;
    then experiment.json with the arms table and paired differences."""
    out = config.run.out
    out.mkdir(parents=True, exist_ok=True)
    arms = [ARMS[name] for name in dict.fromkeys(config.arms)]
    train_file, held_out_file, train_tasks, held_out = _load_tasks(config, out)
    console.print(f"arms: {', '.join(a.name for a in arms)}; {len(train_tasks)} training tasks, "
                  f"{len(held_out)} held out")
    collect_dir, collected = _collect_all(config, arms, train_file, out, console)
    trained = [a for a in arms if a.trained]
    data = _filter_arms(config, trained, collected)
    budget = apply_budget(config, data)
    rows = []
    for arm in arms:
        console.rule(f"arm {arm.name}")
        rows.append(_run_arm(config, arm, data.get(arm.name), collect_dir, train_file, held_out, held_out_file,
                             out, console))
    outcomes = {row["arm"]: _outcomes(out / "arms" / row["arm"] / "eval") for row in rows if "eval" in row}
    result = {"budget": budget, "train": config.train.model_dump(mode="json"),
              "eval": config.eval.model_dump(mode="json"), "held_out": str(held_out_file),
              "arms": rows, "pairs": paired_differences(outcomes, config.eval.bootstrap, config.run.seed)}
    write_text_atomic(out / EXPERIMENT_JSON, json.dumps(result, indent=2) + "\n")
    console.print(arms_table(result))
    return result


def _run_arm(config: ExperimentConfig, arm: Arm, d: ArmData | None, collect_dir: Path, train_file: Path,
             held_out: list, held_out_file: Path, out: Path, console: Console) -> dict:
    arm_dir = out / "arms" / arm.name
    arm_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, newer_than = None, held_out_file
    row: dict = {"arm": arm.name, "strategy": arm.strategy}
    if d is not None:
        row["data"] = {"collected": d.collected, "kept": len(d.kept), "used": len(d.used),
                       "expert_calls_collected": d.collected_expert_calls, "expert_calls_kept": _expert_calls(d.kept),
                       "expert_calls_used": _expert_calls(d.used), "filter": d.report}
        if not d.used:
            row["no_data"] = (f"kept {len(d.kept)} of {d.collected} collected rollouts: nothing to train on, "
                              "not evaluated")
            console.print(f"arm {arm.name}: {row['no_data']}")
            return row
        sft = _prepare_arm_data(config, d, collect_dir, arm_dir, train_file, console)
        newer_than = sft
        if not config.train.skip:
            checkpoint = _train(_pipeline_config(config, [arm.strategy]), sft, collect_dir, arm_dir, console)
            newer_than = checkpoint / "oec_train.json"
    elif arm.name != "base":
        raise ExperimentError(f"arm {arm.name}: no data")
    model = _eval_model(config, arm, checkpoint)
    _evaluate_arm(config, arm, model, held_out, held_out_file, arm_dir, console, newer_than)
    summary = load_summary(arm_dir / "eval")
    tasks = {t.instance_id: t for t in held_out}
    ran = rollouts_that_ran(arm_dir / "eval")
    row.update(model=model, eval=summary.model_dump(exclude={"instances"}),
               process=process_metrics(ran, tasks).model_dump(), train=_train_record(checkpoint))
    return row


def arms_table(result: dict) -> Table:
    table = Table(title=f"experiment ({result['budget']['mode']} budget)")
    for column in ("arm", "n", "resolved", "rate", "95% interval", "failed to run", "kept/used", "expert calls",
                   "valid actions", "submitted", "edited fix file", "ran tests"):
        table.add_column(column)
    for row in result["arms"]:
        d = row.get("data") or {}
        if "eval" not in row:
            table.add_row(row["arm"], "-", "-", "-", "-", "-", f"{d.get('kept', 0)}/0", "-", "no data", "", "", "")
            continue
        e, p = row["eval"], row["process"]
        table.add_row(row["arm"], str(e["n"]), str(e["resolved"]), f"{e['rate']:.3f}",
                      f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]", str(e["not_run"]),
                      f"{d['kept']}/{d['used']}" if d else "-", str(d.get("expert_calls_used", "-")),
                      f"{p['valid_action_rate']:.2f}", f"{p['submitted_rate']:.2f}",
                      f"{p['edited_fix_file_rate']:.2f}", f"{p['ran_tests_rate']:.2f}")
    return table

