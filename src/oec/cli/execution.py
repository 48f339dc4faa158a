"""The option groups several commands share (declared once, here), and running rollouts with Ctrl-C wired.

The options are `Annotated` with real defaults, so commands stay callable as
plain functions (the pipeline calls `collect_command` directly).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.markup import escape

from oec.cli.common import console, err_console, fail
from oec.collect.executors import EXECUTORS, Executor, make_executor
from oec.collect.interrupt import INTERRUPTED_EXIT_CODE, Interrupted, StopSignal, run_stoppable
from oec.collect.attempts import DEFAULT_MAX_ATTEMPTS
from oec.collect.runner import DEFAULT_MAX_CONSECUTIVE_FAILURES, CircuitOpen, CollectSummary

T = TypeVar("T")

# -- where rollouts run: the environment (collect, eval, grade, synth) --------------------------------------
ReposOption = Annotated[Optional[Path], typer.Option(
    "--repos", help="folder of repositories cloned as <owner>__<name> (the bundled projects are found without it)")]
EnvOption = Annotated[str, typer.Option(
    "--env", help="local (repos folder) | docker (each task's SWE-bench/SWE-smith image)")]
IsolationOption = Annotated[str, typer.Option("--isolation", help="auto | bwrap | none (local only)")]
ISOLATIONS = ("auto", "bwrap", "none")


def check_isolation(isolation: str) -> str:
    """Refuse a bad --isolation before any work."""
    if isolation not in ISOLATIONS:
        raise fail(f"--isolation {isolation}: expected {', '.join(ISOLATIONS[:-1])} or {ISOLATIONS[-1]}")
    return isolation


# -- how rollouts run: executors, stopping, failures (collect, eval) ------------------------------------------
ExecutorOption = Annotated[str, typer.Option(
    "--executor", help=f"where rollouts run: {' | '.join(EXECUTORS)} (ray: Ray tasks per rollout and per grading)")]
RayAddressOption = Annotated[Optional[str], typer.Option(
    "--ray-address", help="a Ray cluster to join (e.g. ray://head:10001 or auto); default: start one here")]
GradingSlotsOption = Annotated[Optional[int], typer.Option(
    "--grading-slots", min=1, help="patches graded at once, apart from the --concurrency rollouts (default: "
    "one per core, at most --concurrency): a rollout being graded no longer holds a model slot")]
DrainOption = Annotated[bool, typer.Option(
    "--drain", help="on Ctrl-C, finish the rollouts in flight before exiting (default: abandon them)")]
MaxAttemptsOption = Annotated[int, typer.Option(
    "--max-attempts", min=1, help="tries per rollout that fails to run (model server, sandbox, grader); each "
    "rerun retries the failed ones until then. Such rollouts are never counted as unresolved")]
BreakerOption = Annotated[int, typer.Option(
    "--max-consecutive-failures", min=0, help="stop the run after this many rollouts in a row failed to run "
    "(what finished is kept; 0: never stop)")]
PreflightOption = Annotated[bool, typer.Option(
    "--preflight/--no-preflight", help="check every model server once before the first rollout (reachable, "
    "key accepted, model served, tool calls accepted)")]

#: the exit status of a run stopped by its circuit breaker (2 is a usage error, 130 a Ctrl-C)
BREAKER_EXIT_CODE = 3


@dataclass(frozen=True)
class RunOptions:
    """How rollouts run: where, how Ctrl-C and failures to run are handled. `collect` and `eval` take these
    options as one `run` argument (see `with_run_options`), so they are declared once, here."""

    executor: str = "local"
    ray_address: str | None = None
    grading_slots: int | None = None
    drain: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    preflight: bool = True


_RUN_OPTION_TYPES = {"executor": ExecutorOption, "ray_address": RayAddressOption,
                     "grading_slots": GradingSlotsOption, "drain": DrainOption, "max_attempts": MaxAttemptsOption,
                     "max_consecutive_failures": BreakerOption, "preflight": PreflightOption}


def with_run_options(command: Callable[..., T]) -> Callable[..., T]:
    """Give a typer command the `RunOptions` flags; they reach it as one `run: RunOptions` argument.

    Typer reads a command's parameters from its signature, so the wrapper shows the command's own
    parameters (less `run`) plus one per RunOptions field, each with its flag declared above.
    """
    own = inspect.signature(command, eval_str=True)
    kept = [p for name, p in own.parameters.items() if name != "run"]
    defaults = RunOptions()
    added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                               default=getattr(defaults, name)) for name, annotation in _RUN_OPTION_TYPES.items()]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        run = RunOptions(**{name: kwargs.pop(name) for name in _RUN_OPTION_TYPES if name in kwargs})
        return command(*args, run=run, **kwargs)

    wrapper.__signature__ = own.replace(parameters=kept + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in kept + added} | {"return": own.return_annotation}
    return wrapper


def preflight_or_fail(models: dict[str, object], task: object) -> None:
    """Stop the command before anything is written when a model the run needs cannot be used."""
    from oec.models.api_model import PreflightError
    from oec.models.preflight import preflight

    try:
        preflight(models, task)
    except PreflightError as exc:
        raise fail(f"{exc} (nothing was run or written; --no-preflight skips this check)") from exc


def rollout_setup(tasks_file: Path | None, env: str, isolation: str, options: RunOptions,
                  what: str = "run") -> tuple[list, str]:
    """What collect and eval check before anything else: the options, the engine, the tasks (bad rows shown).

    Returns (the valid tasks, the environment backend); no valid task is an error naming `what` was to happen.
    """
    from oec.cli.common import choose_env_backend, load_task_source, report_errors, warn_about_interpreters

    check_executor(options)
    check_isolation(isolation)
    env = choose_env_backend(env)
    loaded = load_task_source(tasks_file)
    report_errors(loaded)
    if not loaded.tasks:
        raise fail(f"no valid tasks to {what}")
    warn_about_interpreters(loaded.tasks, env)
    return loaded.tasks, env


def check_executor(options: RunOptions) -> None:
    """Reject a bad --executor/--ray-address before any work (tasks, models, the run directory)."""
    if options.executor not in EXECUTORS:
        raise fail(f"--executor {options.executor}: expected one of {', '.join(EXECUTORS)}")
    if options.ray_address and options.executor != "ray":
        raise fail("--ray-address needs --executor ray")


def interrupted_message(summary: CollectSummary) -> str:
    failed = f", {len(summary.failed)} failed to run" if summary.failed else ""
    return (f"interrupted: {len(summary.finished)} rollout(s) finished and written{failed}, {summary.unfinished} "
            "not done; run the same command again to resume")


def run_rollouts(run: Callable[[Executor, StopSignal], Awaitable[T]], options: RunOptions, *, concurrency: int,
                 on_interrupt: Callable[[CollectSummary], None] | None = None) -> T:
    """Make the executor, run `run(executor, stop)` with Ctrl-C wired to `stop`, always close the executor.

    An interrupted run prints what it kept and exits 130 (see `oec.collect.interrupt`).
    """
    try:
        chosen = make_executor(options.executor, concurrency=concurrency, address=options.ray_address,
                               grading_slots=options.grading_slots)
    except (ValueError, ImportError, ConnectionError, RuntimeError) as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None

    async def main(stop: StopSignal) -> T:
        try:
            return await run(chosen, stop)
        finally:
            chosen.close()

    def report(exc: Interrupted) -> None:
        summary = exc.summary
        if isinstance(summary, CollectSummary):
            if on_interrupt is not None:
                on_interrupt(summary)
            err_console.print(f"[yellow]{interrupted_message(summary)}[/]", highlight=False)
        console.file.flush()

    try:
        return asyncio.run(run_stoppable(main, drain=options.drain, on_stop=report))
    except KeyboardInterrupt:  # a Ctrl-C before the handler was in place
        chosen.close()
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    except CircuitOpen as exc:
        if on_interrupt is not None:
            on_interrupt(exc.summary)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}. {len(exc.summary.finished)} rollout(s) finished and were "
                          f"kept; fix the cause and run the same command again: the {len(exc.summary.failed_ids)} "
                          "that failed are retried", highlight=False, soft_wrap=True)
        raise typer.Exit(BREAKER_EXIT_CODE) from None
