"""The whole method on one config: collect -> filter -> export -> train -> eval -> compare.

Each stage reads and writes files under the run directory and is skipped when
its output is newer than its inputs, so a killed `oec run` picks up where it
stopped (collection and evaluation also resume rollout by rollout).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from oec.cli.collect import collect_command, role_options
from oec.cli.common import invoke, repo_index
from oec.cli.eval_cmd import comparison_table
from oec.cli.export_cmd import export_command
from oec.cli.filter_cmd import FILTERED, filter_command
from oec.collect.episode import EpisodeLimits
from oec.collect.run_dir import TRAJECTORIES
from oec.eval.process import process_table
from oec.models.portable import release_providers
from oec.eval.evaluate import EVAL_SUMMARY, EvalSummary, evaluate, load_summary
from oec.pipeline.config import PipelineConfig
from oec.tasks.loaders import load_tasks_strict
from oec.tasks.model import Task


class PipelineError(RuntimeError):
    """A stage cannot go on; the message says which file shows why."""


@dataclass
class PipelineResult:
    out: Path
    evaluations: list[tuple[str, EvalSummary]] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)


def is_current(output: Path, *inputs: Path) -> bool:
    """make's rule: the output exists and is no older than any input."""
    if not output.exists():
        return False
    newest_input = max((p.stat().st_mtime for p in inputs if p.exists()), default=0.0)
    return output.stat().st_mtime >= newest_input


def split_tasks(tasks: list[Task], eval_fraction: float, seed: int) -> tuple[list[Task], list[Task]]:
    """Hold out round(fraction x n) tasks, chosen by a hash of (seed, instance id): the same ids give the same
    split whatever the file order, and the split differs between seeds."""
    def bucket(task: Task) -> bytes:
        return hashlib.sha256(f"{seed}:{task.instance_id}".encode()).digest()

    n_eval = round(eval_fraction * len(tasks))
    if eval_fraction > 0 and len(tasks) > 1:
        n_eval = min(max(n_eval, 1), len(tasks) - 1)
    held_out_ids = {t.instance_id for t in sorted(tasks, key=bucket)[:n_eval]}
    train = [t for t in tasks if t.instance_id not in held_out_ids]
    held_out = [t for t in tasks if t.instance_id in held_out_ids]
    return train, held_out


def _write_tasks(path: Path, tasks: list[Task]) -> None:
    text = "".join(t.model_dump_json() + "\n" for t in tasks)
    if not path.exists() or path.read_text() != text:  # keep mtimes still when nothing changed
        path.write_text(text)


def run_pipeline(config: PipelineConfig, console: Console) -> PipelineResult:
    """collect -> filter -> export -> train -> evaluate -> report, each stage skipped when its output is current."""
    from oec.tasks.bundled import BUNDLED_TASKS_FILE

    out = config.run.out
    out.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(out)
    tasks = load_tasks_strict(config.tasks.file or BUNDLED_TASKS_FILE)[: config.tasks.limit]
    train_tasks, eval_tasks = split_tasks(tasks, config.tasks.eval_fraction, config.run.seed)
    train_file, eval_file = out / "tasks-train.jsonl", out / "tasks-eval.jsonl"
    _write_tasks(train_file, train_tasks)
    _write_tasks(eval_file, eval_tasks)
    console.print(f"tasks: {len(train_tasks)} for collection, {len(eval_tasks)} held out for evaluation")

    collect_dir = out / "collect"
    _collect(config, train_file, collect_dir, console)
    filtered = _filter(config, collect_dir, console)
    sft = _export(config, collect_dir, filtered, train_file, out, console)
    checkpoint = _train(config, sft, collect_dir, out, console)
    result.evaluations = _evaluate(config, checkpoint, eval_tasks, eval_file, out, console)

    console.print(comparison_table(result.evaluations))
    console.print(process_table([(s.label or where, where) for where, s in result.evaluations],
                                {t.instance_id: t for t in eval_tasks}))
    from oec.report import write_report

    report = write_report(out)
    result.paths = {"trajectories": collect_dir / TRAJECTORIES, "filter report": collect_dir / "filter_report.json",
                    "sft data": sft, "checkpoint": checkpoint, "evaluations": out / "eval",
                    "report": report}
    for name, path in result.paths.items():
        console.print(f"{name:>14}: {path}")
    return result


def _collect(config: PipelineConfig, train_file: Path, collect_dir: Path, console: Console) -> None:
    console.rule(f"1/5 collect ({', '.join(config.collect.strategies)})")
    c, m = config.collect, config.models
    invoke(collect_command, tasks_file=train_file, student=m.student, expert=m.expert, strategy=list(c.strategies),
           switch=c.switch, samples=c.samples, concurrency=c.concurrency, seed=config.run.seed,
           out=collect_dir, repos=config.tasks.repos, student_base_url=m.student_base_url,
           expert_base_url=m.expert_base_url, max_calls=c.max_calls, max_student_calls=c.max_student_calls,
           max_steps=c.max_steps, max_tokens=m.max_tokens, student_max_tokens=m.student_max_tokens,
           expert_max_tokens=m.expert_max_tokens, student_temperature=m.student_temperature,
           expert_temperature=m.expert_temperature, student_format=m.student_format,
           expert_format=m.expert_format, command_timeout=c.command_timeout,
           max_observation_chars=c.max_observation_chars, max_format_errors=c.max_format_errors, env=config.run.env)


def _filter(config: PipelineConfig, collect_dir: Path, console: Console) -> Path:
    console.rule("2/5 filter")
    filtered = collect_dir / FILTERED
    if is_current(filtered, collect_dir / TRAJECTORIES):
        console.print(f"up to date: {filtered}")
        return filtered
    f = config.filter
    invoke(filter_command, run_dir=collect_dir, keep_resolved=f.resolved, max_repeat=f.max_repeat, steps=f.max_steps,
           reasons=",".join(f.exit_reasons) if f.exit_reasons is not None else None,
           drop_reward_hacks=f.reward_hack)
    return filtered


def _export(config: PipelineConfig, collect_dir: Path, filtered: Path, train_file: Path, out: Path,
            console: Console) -> Path:
    console.rule("3/5 export (student format, expert turns trained)")
    sft = out / f"sft.{config.export.format}.jsonl"
    if is_current(sft, filtered):
        console.print(f"up to date: {sft}")
        return sft
    mix = ",".join(f"{k}={v}" for k, v in config.export.mix.items()) if config.export.mix else None
    invoke(export_command, run_dir=collect_dir, fmt=config.export.format, out=sft, mix=mix, seed=config.run.seed,
           allow_short=config.export.allow_short, tasks_file=train_file)
    return sft


def _train(config: PipelineConfig, sft: Path, collect_dir: Path, out: Path, console: Console) -> Path:
    from oec.train.trainer import train

    console.rule("4/5 train")
    checkpoint = out / "checkpoint"
    if not sft.read_text().strip():
        raise PipelineError(f"{sft} holds no records: nothing was resolved and kept; see "
                            f"{collect_dir / 'filter_report.json'} and raise the collection limits")
    if is_current(checkpoint / "oec_train.json", sft):
        console.print(f"up to date: {checkpoint}")
        return checkpoint
    release_providers()  # the collection's student: its weights and prefix caches are not needed to train
    t = config.train
    summary = train(sft, config.models.student, checkpoint, lora=t.lora, epochs=t.epochs, lr=t.lr,
                    max_length=t.max_length, batch_size=t.batch_size, grad_accum=t.grad_accum, seed=config.run.seed,
                    max_steps=t.max_steps, overwrite=True, precision=t.precision,
                    gradient_checkpointing=t.gradient_checkpointing, lora_r=t.lora_r, lora_alpha=t.lora_alpha,
                    lora_dropout=t.lora_dropout, warmup=t.warmup, lr_scheduler=t.lr_scheduler,
                    save_steps=t.save_steps, resume=t.resume, long_records=t.long_records)
    console.print(f"trained on {summary.records_used} records as {summary.examples} examples "
                  f"({summary.supervised_tokens} supervised tokens, {summary.windowed_records} records cut "
                  f"into windows); dropped {summary.dropped_too_long} too long")
    return checkpoint


def _evaluate(config: PipelineConfig, checkpoint: Path, eval_tasks: list[Task], eval_file: Path, out: Path,
              console: Console) -> list[tuple[str, EvalSummary]]:
    """The base student (when asked) and the trained one, alone on the held-out tasks, with the same limits."""
    console.rule("5/5 evaluate on held-out tasks")
    m, c, e = config.models, config.collect, config.eval
    models = ([("base", m.student, "none")] if e.base else []) + [
        ("trained", f"hf:{checkpoint}", "+".join(c.strategies))]
    evaluations = []
    for label, spec, source in models:
        eval_dir = out / "eval" / label
        if is_current(eval_dir / EVAL_SUMMARY, checkpoint / "oec_train.json" if label == "trained" else eval_file):
            evaluations.append((str(eval_dir), load_summary(eval_dir)))
            console.print(f"up to date: {eval_dir}")
            continue
        console.print(f"evaluating {label}: {spec}")
        summary = asyncio.run(evaluate(
            spec, eval_tasks, repo_index(config.tasks.repos), eval_dir, samples=e.samples, concurrency=e.concurrency,
            seed=config.run.seed, options=role_options(
                "student", base_url=m.student_base_url if label == "base" else None,
                max_tokens=e.max_tokens or m.student_max_tokens or m.max_tokens, temperature=m.student_temperature,
                fmt=m.student_format, seed=config.run.seed, concurrency=e.concurrency),
            limits=EpisodeLimits(max_calls_per_model=e.max_calls, max_observation_chars=c.max_observation_chars,
                                 max_format_errors=e.max_format_errors),
            command_timeout=c.command_timeout, data_source=source, label=label, console=console,
            env_backend=config.run.env))
        evaluations.append((str(eval_dir), summary))
    return evaluations
