"""`oec collect`: behaviour-cloning, on-policy and OEC rollouts into a run directory."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from oec import __version__
from oec.agent.formats import ActionFormat, native_tools_option
from oec.cli.common import console, fail, repo_index
from oec.cli.execution import (EnvOption, IsolationOption, ReposOption, RunOptions, preflight_or_fail, rollout_setup,
                               run_rollouts, with_run_options)
from oec.collect.episode import EpisodeLimits
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir, RunDirError
from oec.collect.attempts import failure_summary
from oec.collect.runner import CollectSummary, collect
from oec.collect.schedules import STRATEGIES, check_switch_fits, parse_switch
from oec.models.portable import PortableProvider
from oec.models.registry import ModelOptions

IDENTITY_KEYS = ("seed", "student", "expert", "switch", "max_calls", "max_student_calls", "max_steps",
                 "student_format")


def _strategies(values: list[str]) -> list[str]:
    names = [s.strip() for v in values for s in v.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        raise fail(f"--strategy {','.join(bad) or '(none)'}: expected some of {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(names))


def role_options(role: str, *, base_url: str | None, max_tokens: int, temperature: float | None, fmt: str,
                 seed: int, concurrency: int) -> ModelOptions:
    """One role's model options from its flags; a temperature is set only when given (a backend may refuse it)."""
    values: dict = {"base_url": base_url, "max_tokens": max_tokens, "seed": seed, "max_concurrency": concurrency,
                    "native_tools": native_tools_option(fmt, "--format" if role == "model" else f"--{role}-format")}
    if temperature is not None:
        values["temperature"] = temperature
    return ModelOptions(**values)


def spoken_format(provider: PortableProvider | None, tasks: list) -> ActionFormat | None:
    """The action format this role's model speaks (asked of the model a rollout would get), None without one."""
    if provider is None:
        return None
    return "native" if provider.for_task(tasks[0]).native_tools else "text"


def _chosen(fmt: str) -> str | None:
    return None if fmt == "auto" else fmt


def _generation(options: ModelOptions) -> dict:
    return {"max_tokens": options.max_tokens, "temperature": options.temperature}


def summary_table(summary: CollectSummary) -> Table:
    """Per strategy: the rollouts that ran (and how they ended) beside those that failed to run."""
    table = Table(title="collected rollouts")
    for column in ("strategy", "rollouts", "resolved", "submitted", "mean steps", "mean switch step",
                   "failed to run"):
        table.add_column(column)
    by_strategy: dict[str, list] = {}
    for t in summary.finished:
        by_strategy.setdefault(t.strategy, []).append(t)
    failed: dict[str, set[str]] = {}
    for attempt in summary.failed:
        failed.setdefault(attempt.strategy, set()).add(attempt.id)
    for strategy in sorted(set(by_strategy) | set(failed)):
        items = by_strategy.get(strategy, [])
        switches = [t.switch_step for t in items if t.switch_step is not None]
        table.add_row(strategy, str(len(items)), str(sum(t.resolved for t in items)),
                      str(sum(t.exit_reason == "submitted" for t in items)),
                      f"{sum(len(t.steps) for t in items) / len(items):.1f}" if items else "-",
                      f"{sum(switches) / len(switches):.1f}" if switches else "-",
                      str(len(failed.get(strategy, ()))))
    caption = [f"{summary.skipped} already done and skipped"]
    if summary.failed:
        caption.append(f"{len(summary.failed_ids)} failed to run (not written; rerun to retry): "
                       f"{escape(failure_summary(summary.failed))}")
    if summary.gave_up:
        caption.append(f"{summary.gave_up} not tried again (failed to run --max-attempts times already)")
    table.caption = "; ".join(caption)
    return table


@with_run_options
def collect_command(
    tasks_file: Optional[Path] = typer.Argument(None, help="task file; omit for the bundled suite"),
    student: str = typer.Option("hf:smollm2-135m", "--student", help="BACKEND:MODEL of the student"),
    expert: str = typer.Option("oracle", "--expert", help="BACKEND:MODEL of the expert"),
    strategy: list[str] = typer.Option(["oec"], "--strategy", help="bc | on-policy | oec (repeat or comma-separate)"),
    switch: str = typer.Option("uniform:0-30", "--switch", help="uniform:A-B | fixed:K | tokens:N | cost:USD | "
                                "divergence:DETECTORS[;min=A,max=B], e.g. divergence:loop=3,errors=3,regression=5,"
                                "oracle;max=30 (detectors: loop, errors, regression, judge, likelihood, oracle)"),
    samples: int = typer.Option(1, "--samples", min=1, help="rollouts per task and strategy"),
    concurrency: int = typer.Option(4, "--concurrency", min=1,
                                   help="rollouts in their agent phase at once (each with a model slot)"),
    seed: int = typer.Option(0, "--seed", help="run seed; every draw derives from it"),
    out: Path = typer.Option(..., "--out", help="run directory (rerun to resume)"),
    repos: ReposOption = None,
    student_base_url: Optional[str] = typer.Option(None, "--student-base-url"),
    expert_base_url: Optional[str] = typer.Option(None, "--expert-base-url"),
    max_calls: int = typer.Option(75, "--max-calls", help="model calls per model per rollout"),
    max_student_calls: Optional[int] = typer.Option(None, "--max-student-calls",
                                                    help="a tighter call cap for the student alone"),
    max_steps: int = typer.Option(150, "--max-steps", help="steps per rollout, both models together"),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="USD per rollout"),
    max_tokens: int = typer.Option(512, "--max-tokens", help="tokens per model reply (both roles, unless set below)"),
    student_max_tokens: Optional[int] = typer.Option(None, "--student-max-tokens", min=1,
                                                     help="tokens per student reply (default --max-tokens)"),
    expert_max_tokens: Optional[int] = typer.Option(None, "--expert-max-tokens", min=1,
                                                    help="tokens per expert reply (default --max-tokens)"),
    student_temperature: Optional[float] = typer.Option(
        None, "--student-temperature", min=0.0, help="sampling temperature of the student (default: 0, greedy)"),
    expert_temperature: Optional[float] = typer.Option(
        None, "--expert-temperature", min=0.0,
        help="sampling temperature of the expert (default: 0; anthropic takes none)"),
    student_format: str = typer.Option("auto", "--student-format",
                                       help="auto | text | native: how the student writes actions; recorded in "
                                            "the run, and used by export, train and eval"),
    expert_format: str = typer.Option("auto", "--expert-format", help="auto | text | native"),
    command_timeout: float = typer.Option(300.0, "--command-timeout", help="seconds per sandbox command"),
    max_observation_chars: int = typer.Option(10_000, "--max-observation-chars",
                                              help="longer observations keep their head and tail"),
    max_format_errors: Optional[int] = typer.Option(
        None, "--max-format-errors", min=1,
        help="end a rollout no expert takes over (bc's expert, on-policy) after this many replies in a row with "
             "no valid action"),
    isolation: IsolationOption = "auto",
    env: EnvOption = "local",
    run: RunOptions = RunOptions(),
) -> None:
    """Collect trajectories; each finished rollout is appended to OUT/trajectories.jsonl at once."""
    from oec.env.sandbox import SandboxLimits

    strategies = _strategies(strategy)
    try:
        sampler = parse_switch(switch)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    tasks, env = rollout_setup(tasks_file, env, isolation, run)
    try:
        if "oec" in strategies:
            check_switch_fits(sampler, max_calls=max_calls, max_student_calls=max_student_calls, max_steps=max_steps)
        # portable: a Ray worker rebuilds them from spec and options (see oec.models.portable)
        student_options = role_options("student", base_url=student_base_url,
                                       max_tokens=student_max_tokens or max_tokens, temperature=student_temperature,
                                       fmt=student_format, seed=seed, concurrency=concurrency)
        expert_options = role_options("expert", base_url=expert_base_url, max_tokens=expert_max_tokens or max_tokens,
                                      temperature=expert_temperature, fmt=expert_format, seed=seed,
                                      concurrency=concurrency)
        student_provider = None if strategies == ["bc"] else PortableProvider(student, student_options)
        expert_provider = None if strategies == ["on-policy"] else PortableProvider(expert, expert_options)
        formats = {"student_format": spoken_format(student_provider, tasks) or _chosen(student_format),
                   "expert_format": spoken_format(expert_provider, tasks) or _chosen(expert_format)}
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if run.preflight:
        preflight_or_fail({"student": student_provider, "expert": expert_provider}, tasks[0])
    run_dir = RunDir(out)
    config = {"seed": seed, "student": student, "expert": expert, "switch": sampler.spec, "max_calls": max_calls,
              "max_student_calls": max_student_calls, "max_format_errors": max_format_errors,
              "max_steps": max_steps, "max_cost": max_cost, "strategies": strategies, "samples": samples,
              **formats, "generation": {"student": _generation(student_options), "expert": _generation(expert_options)},
              "tasks": str(tasks_file or "bundled"), "oec_version": __version__, "python": platform.python_version()}
    try:
        run_dir.prepare(config, IDENTITY_KEYS)
    except RunDirError as exc:
        raise fail(str(exc)) from exc
    index = repo_index(repos)
    limits = EpisodeLimits(max_calls_per_model=max_calls, max_student_calls=max_student_calls, max_steps=max_steps,
                    max_cost_usd=max_cost,
                    max_observation_chars=max_observation_chars, max_format_errors=max_format_errors)
    configs = [RolloutConfig(strategy=s, student=student_provider, expert=expert_provider,  # type: ignore[arg-type]
                             switch=sampler, repos=index, seed=seed, limits=limits,
                             sandbox_limits=SandboxLimits(timeout_s=command_timeout),
                             isolation=isolation, env_backend=env)  # type: ignore[arg-type]
               for s in strategies]
    summary = run_rollouts(
        lambda chosen, stop: collect(tasks, configs, run_dir, samples=samples, concurrency=concurrency,
                                     console=console, executor=chosen, stop=stop, max_attempts=run.max_attempts,
                                     max_consecutive_failures=run.max_consecutive_failures),
        run, concurrency=concurrency, on_interrupt=lambda partial: console.print(summary_table(partial)))
    if summary.swept.total:
        console.print(f"removed leftovers of killed runs: {summary.swept}")
    console.print(summary_table(summary))
    console.print(f"trajectories in {run_dir.trajectories}")
