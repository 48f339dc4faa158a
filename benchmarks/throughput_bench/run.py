"""A whole run: the server started, every concurrency level in every grading mode, the other client setups,
the sandbox overhead, and the PASS/FAIL verdicts; everything lands in one results dict.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .levels import Variant, default_pool_size, run_level
from .measure import OwnCpu
from .sandbox_overhead import sandbox_overhead
from .script import CALLS_PER_ROLLOUT, SCRIPT, TARGET_CONCURRENCY, TARGET_RATIO
from .server import ModelServer

#: the other client setups, by grading mode. Grading off (what the bound measures): the old cap of 8 model
#: slots, a thread per rollout; grading on: as many graders as rollouts instead of one per core
FIXES = {False: [Variant(model_slots="cli"), Variant(threads="auto")],
         True: [Variant(grading_slots="concurrency")]}


@dataclass(frozen=True)
class Bench:
    """What every level of a run shares."""

    args: argparse.Namespace
    console: Any
    server: ModelServer
    repos: Any
    suite: list
    work: Path
    meter: OwnCpu

    def level(self, c: int, grade: bool, v: Variant) -> dict[str, Any]:
        """One level, with a status line while it runs and a log line after."""
        n = max(self.args.waves * c, self.args.min_rollouts)
        with self.console.status(f"concurrency {c}, grading {'on' if grade else 'off'}, {v.label}: {n} rollouts"):
            row = run_level(server=self.server, repos=self.repos, suite=self.suite, work=self.work, concurrency=c,
                            rollouts=n, grade=grade, variant=v, meter=self.meter)
        self.console.log(f"c={c} grade={'on' if grade else 'off'} [{v.label}]: {row['rollouts_per_min']:.1f}/min, "
                         f"ratio {row['ratio']:.2f}")
        return row

    def levels(self, variant: Variant) -> list[dict[str, Any]]:
        return [self.level(c, grade, variant) for grade in self.args.grade_modes for c in self.args.levels]

    def experiments(self, variant: Variant) -> list[dict[str, Any]]:
        """The other client setups at the experiment levels (those that differ from the main table's)."""
        return [self.level(c, grade, v) for c in self.args.experiment_levels for grade in sorted(self.args.grade_modes)
                for v in FIXES[grade] if v != variant]


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """PASS/FAIL of the target (ratio >= 0.8 at concurrency 32), per grading mode, where that level ran."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["concurrency"] == TARGET_CONCURRENCY:
            key = "grading_on" if row["grade"] else "grading_off"
            out[key] = {"ratio": row["ratio"], "pass": row["ratio"] >= TARGET_RATIO}
    return out


def experiment_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The best other setup at concurrency 32, per grading mode, against the target."""
    best: dict[str, Any] = {}
    for row in rows:
        if row["concurrency"] == TARGET_CONCURRENCY:
            key = "grading_on" if row["grade"] else "grading_off"
            if key not in best or row["ratio"] > best[key]["ratio"]:
                best[key] = {"ratio": row["ratio"], "pass": row["ratio"] >= TARGET_RATIO, "variant": row["variant"]}
    return best


def _meta(args: argparse.Namespace, suite: list, variant: Variant) -> dict[str, Any]:
    return {"latency_s": args.latency, "calls_per_rollout": CALLS_PER_ROLLOUT, "cpus": os.cpu_count(),
            "python": platform.python_version(), "suite_tasks": len(suite), "script": SCRIPT,
            "default_thread_pool": default_pool_size(), "waves": args.waves, "quick": args.quick,
            "variant": variant.label}


def _measure(bench: Bench, variant: Variant, results: dict[str, Any]) -> None:
    """The levels, the other setups (when asked for) and the sandbox overhead, into `results`."""
    results["levels"].extend(bench.levels(variant))
    if bench.args.experiments:
        results["experiments"].extend(bench.experiments(variant))
    with bench.console.status("sandbox overhead"):
        results["sandbox_overhead"] = sandbox_overhead(bench.repos, bench.suite[0], bench.work,
                                                       bench.args.sandbox_reps)


def run_benchmark(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    """Every measurement of a run, with its verdicts; printing is the caller's."""
    import warnings

    from oec.env.repos import RepoIndex
    from oec.tasks.bundled import bundled_repos_dir, load_bundled_tasks

    warnings.filterwarnings("ignore", module="oec.env.sandbox")
    suite = load_bundled_tasks()
    repos = RepoIndex([bundled_repos_dir()])
    variant = Variant(model_slots=args.model_slots, threads=args.threads, grading_slots=args.grading_slots)
    results: dict[str, Any] = {"meta": _meta(args, suite, variant), "levels": [], "experiments": []}
    with (tempfile.TemporaryDirectory(prefix="oec-bench-") as tmp,
          contextlib.closing(ModelServer(args.latency)) as server):
        meter = OwnCpu()  # after the server started: it is not counted as the client's
        results["meta"]["cpu_exact"] = meter.exact
        try:
            _measure(Bench(args, console, server, repos, suite, Path(tmp), meter), variant, results)
        finally:
            meter.close()
    results["verdict"] = verdict(results["levels"])
    results["experiment_verdict"] = experiment_verdict(results["experiments"])
    return results
