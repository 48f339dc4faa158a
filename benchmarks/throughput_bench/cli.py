"""The command line: the options (with the --quick defaults) and ``main``, which runs, prints and writes JSON.

``--serve`` (internal) makes the process the scripted model server instead; it imports neither oec nor rich.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from .report import print_report
from .run import run_benchmark
from .script import TARGET_CONCURRENCY
from .server import serve


def _description() -> str:
    return (sys.modules[__package__].__doc__ or "").split("\n\n")[0]


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency", type=float, default=1.0, help="seconds the server takes per call (default 1.0)")
    p.add_argument("--concurrency", default="1,8,32,64", help="comma-separated levels (default 1,8,32,64)")
    p.add_argument("--waves", type=int, default=None,
                   help="rollouts per slot at each level (default 2; 1 with --quick)")
    p.add_argument("--min-rollouts", type=int, default=None,
                   help="at least this many rollouts per level (default 4; 2 with --quick)")
    p.add_argument("--grading", default="on,off", help="grading modes to run: on, off or on,off (default)")
    p.add_argument("--model-slots", choices=("cli", "concurrency"), default="concurrency",
                   help="the OpenAI backend's max_concurrency: concurrency = the level's, as `oec collect` sets it "
                        "(default), cli = ModelOptions' default of 8")
    p.add_argument("--grading-slots", choices=("default", "concurrency"), default="default",
                   help="gradings at once: default = one per core, at most c (as shipped), concurrency = c")
    p.add_argument("--threads", default="default",
                   help="default thread pool of the event loop: default (asyncio's), auto (c + 4), or a number")
    p.add_argument("--sandbox-reps", type=int, default=None, help="runs per command for the sandbox overhead "
                                                                  "(default 40; 10 with --quick)")
    p.add_argument("--experiments", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the proposed fixes (default: on, off with --quick)")
    p.add_argument("--experiment-levels", default=str(TARGET_CONCURRENCY),
                   help="concurrency levels for the fixes (default 32)")
    p.add_argument("--quick", action="store_true", help="a short run: one wave per level, fewer sandbox runs")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # internal: be the model server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_options(p)
    args = p.parse_args(argv)
    args.levels = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    args.experiment_levels = [int(x) for x in str(args.experiment_levels).split(",") if x.strip()]
    args.grade_modes = [{"on": True, "off": False}[x.strip()] for x in args.grading.split(",") if x.strip()]
    args.waves = args.waves or (1 if args.quick else 2)
    args.min_rollouts = args.min_rollouts or (2 if args.quick else 4)
    args.sandbox_reps = args.sandbox_reps or (10 if args.quick else 40)
    if args.experiments is None:
        args.experiments = not args.quick
    if args.latency <= 0 or not args.levels or min(args.levels) < 1 or not args.grade_modes:
        p.error("need --latency > 0, concurrency levels >= 1 and at least one grading mode")
    return args


def _default_console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or redirected: wide enough for the tables
        console = Console(width=200)
    return console


def _write_json(results: dict[str, Any], path: Path, console: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {path}")


def main(argv: list[str] | None = None, console: Any = None) -> dict[str, Any]:
    """Run the benchmark; print the tables; return (and with --json write) every number."""
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.latency))
        return {}
    if console is None:
        console = _default_console()
    results = run_benchmark(args, console)
    print_report(results, console)
    if args.json:
        _write_json(results, args.json, console)
    return results
