"""One concurrency level: N bc rollouts through ``oec.collect.runner.collect`` and the numbers of its row.

A level is set up as `oec collect` sets it up (model slots = concurrency, asyncio's default thread pool,
one grading slot per core), unless a ``Variant`` applies another client setup inside this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .measure import OwnCpu, machine_busy_seconds, watch_loop
from .script import CALLS_PER_ROLLOUT, CLI_MODEL_SLOTS, MODEL_NAME
from .server import ModelServer


@dataclass(frozen=True)
class Variant:
    """How the client is set up: as `oec collect` does it, or with a proposed fix applied in-process."""

    # "concurrency": max_concurrency = c, as `oec collect` sets it; "cli": ModelOptions' default (8)
    model_slots: str = "concurrency"
    threads: str = "default"   # "default": asyncio's min(32, cpus + 4); "auto": c + 4; or a number
    grading_slots: str = "default"  # "default": LocalExecutor's (one per core, at most c); "concurrency": c

    @property
    def label(self) -> str:
        parts = []
        if self.model_slots != "concurrency":
            parts.append(f"model slots={CLI_MODEL_SLOTS}")
        if self.threads != "default":
            parts.append("threads=c+4" if self.threads == "auto" else f"threads={self.threads}")
        if self.grading_slots != "default":
            parts.append("grading slots=c")
        return ", ".join(parts) or "as shipped"

    def graders(self, concurrency: int) -> int | None:
        return concurrency if self.grading_slots == "concurrency" else None

    def slots(self, concurrency: int) -> int:
        return CLI_MODEL_SLOTS if self.model_slots == "cli" else max(1, concurrency)

    def pool_size(self, concurrency: int) -> int | None:
        if self.threads == "default":
            return None
        return concurrency + 4 if self.threads == "auto" else int(self.threads)


def default_pool_size() -> int:
    """What asyncio's default executor gets (ThreadPoolExecutor's default max_workers)."""
    return min(32, (os.cpu_count() or 1) + 4)


def latency_bound(rollouts: int, concurrency: int, latency: float, calls: int = CALLS_PER_ROLLOUT) -> float:
    """Rollouts per minute of a zero-overhead client: each rollout is exactly calls x latency, c at a time."""
    if rollouts <= 0:
        return 0.0
    waves = math.ceil(rollouts / max(1, concurrency))
    return rollouts / (waves * calls * latency) * 60.0


def split_rollouts(n: int, available: int) -> tuple[int, int]:
    """(tasks, samples) with tasks * samples == n and as many distinct tasks as the suite allows."""
    for k in range(min(n, available), 0, -1):
        if n % k == 0:
            return k, n // k
    return 1, n


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 3) if values else 0.0


@dataclass(frozen=True)
class _Cost:
    """What a level took besides its trajectories: wall time, loop lags, CPU, and what the server saw."""

    wall: float
    lags: list[float]
    cpu: float  # this process + everything it started (sandboxed commands, git, graders' pytest), not the server
    cpu_exact: bool
    busy: float | None  # the whole machine's busy CPU seconds meanwhile
    served: dict[str, Any]
    server_cpu: float


async def _collect_level(tasks: list, samples: int, config: Any, run_path: Path, concurrency: int,
                         pool: int | None, graders: int | None) -> tuple[Any, float, list[float]]:
    from rich.console import Console

    from oec.collect.executors import LocalExecutor
    from oec.collect.run_dir import RunDir
    from oec.collect.runner import collect

    if pool is not None:  # the --threads experiment: a bigger default executor for this loop only
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=pool, thread_name_prefix="bench-to-thread"))
    quiet = Console(file=io.StringIO(), force_terminal=False)
    lags: list[float] = []
    watcher = asyncio.ensure_future(watch_loop(lags))
    started = time.perf_counter()
    try:
        summary = await collect(tasks, [config], RunDir(run_path), samples=samples, concurrency=concurrency,
                                console=quiet, executor=LocalExecutor(concurrency, grading_slots=graders))
        return summary, time.perf_counter() - started, lags
    finally:  # close the HTTP client on its own loop (else its pool is garbage-collected after the loop closed)
        watcher.cancel()
        per_loop = getattr(getattr(config.expert, "model", None), "_client", None)
        with contextlib.suppress(Exception):
            await per_loop.get().close()


def _rollout_config(server: ModelServer, repos: Any, run_path: Path, concurrency: int, grade: bool,
                    variant: Variant) -> Any:
    """The bc RolloutConfig with the scripted server as the expert, through oec's OpenAI backend."""
    from oec.collect.episode import EpisodeLimits
    from oec.collect.rollout import RolloutConfig
    from oec.models.registry import ModelOptions, make_provider

    expert = make_provider(f"openai:{MODEL_NAME}", ModelOptions(
        base_url=server.base_url, native_tools=True, max_concurrency=variant.slots(concurrency), max_retries=0,
        timeout_s=60.0))
    return RolloutConfig(strategy="bc", student=None, expert=expert, switch=None, repos=repos, seed=0,
                         limits=EpisodeLimits(max_calls_per_model=CALLS_PER_ROLLOUT + 2),
                         work_root=run_path / "ws", grade=grade)


def run_level(*, server: ModelServer, repos: Any, suite: list, work: Path, concurrency: int, rollouts: int,
              grade: bool, variant: Variant, meter: OwnCpu) -> dict[str, Any]:
    """One concurrency level: `rollouts` bc rollouts through collect(); the numbers of the table row."""
    k, samples = split_rollouts(rollouts, len(suite))
    tag = (f"c{concurrency}-{'grade' if grade else 'nograde'}-"
           f"{variant.model_slots}-{variant.threads}-{variant.grading_slots}")
    run_path = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))  # a fresh run directory: nothing to resume
    config = _rollout_config(server, repos, run_path, concurrency, grade, variant)
    cpu_server0 = server.stats(reset=True).get("cpu_s", 0.0)
    cpu0, busy0 = meter.seconds(), machine_busy_seconds()
    summary, wall, lags = asyncio.run(_collect_level(suite[:k], samples, config, run_path / "run", concurrency,
                                                     variant.pool_size(concurrency), variant.graders(concurrency)))
    cpu = meter.seconds() - cpu0
    busy1 = machine_busy_seconds()
    served = server.stats()
    cost = _Cost(wall=wall, lags=lags, cpu=cpu, cpu_exact=meter.exact,
                 busy=busy1 - busy0 if busy0 is not None and busy1 is not None else None,
                 served=served, server_cpu=served.get("cpu_s", 0.0) - cpu_server0)
    shutil.rmtree(run_path, ignore_errors=True)
    return level_row(summary, cost, concurrency=concurrency, grade=grade, variant=variant, tasks=k,
                     samples=samples, latency=server.latency)


def _ran_whole_script(trajectory: Any, grade: bool) -> bool:
    """Submitted after exactly the scripted calls, with a patch (and a grade when grading)."""
    t = trajectory
    return bool(t.exit_reason == "submitted" and t.patch
                and sum(u.calls for u in t.usage.values()) == CALLS_PER_ROLLOUT
                and (not grade or (t.reward is not None and t.reward.status in ("resolved", "unresolved"))))


def level_row(summary: Any, cost: _Cost, *, concurrency: int, grade: bool, variant: Variant, tasks: int,
              samples: int, latency: float) -> dict[str, Any]:
    """The row of one level, in the order --json writes it."""
    from oec.collect.executors import default_grading_slots

    trajectories = summary.finished
    times = _time_fields(trajectories)
    return {
        "concurrency": concurrency,
        "grade": grade,
        "variant": variant.label,
        "model_slots": variant.slots(concurrency),
        "thread_pool": variant.pool_size(concurrency) or default_pool_size(),
        "rollouts": len(trajectories),
        "tasks": tasks,
        "samples": samples,
        "ok_rollouts": sum(1 for t in trajectories if _ran_whole_script(t, grade)),
        "exit_reasons": dict(summary.exit_reasons()),
        "resolved": summary.resolved,
        **_rate_fields(len(trajectories), cost.wall, concurrency, latency),
        **times,
        "grading_slots": (variant.graders(concurrency) or default_grading_slots(concurrency)) if grade else None,
        # agent time beyond the model's own latency: sandbox commands, thread-pool and model-slot queueing
        "mean_agent_overhead_s": round(times["mean_agent_s"] - CALLS_PER_ROLLOUT * latency, 3),
        **_call_fields(trajectories, cost),
        **_cpu_fields(len(trajectories), cost),
    }


def _rate_fields(rollouts: int, wall: float, concurrency: int, latency: float) -> dict[str, Any]:
    bound = latency_bound(rollouts, concurrency, latency)
    rate = rollouts / wall * 60.0 if wall > 0 else 0.0
    return {
        "wall_s": round(wall, 3),
        "rollouts_per_min": round(rate, 2),
        "latency_bound_per_min": round(bound, 2),
        "ratio": round(rate / bound, 3) if bound else 0.0,
    }


def _time_fields(trajectories: list) -> dict[str, Any]:
    timings = {key: _mean([t.timings.get(key, 0.0) for t in trajectories])
               for key in ("env_setup_s", "agent_s", "grade_s", "grade_wait_s", "total_s")}
    return {
        "mean_rollout_s": timings["total_s"],
        "mean_env_setup_s": timings["env_setup_s"],
        "mean_agent_s": timings["agent_s"],
        "mean_grade_s": timings["grade_s"],
        "mean_grade_wait_s": timings["grade_wait_s"],  # agent phase done, queued for a grading slot
    }


def _call_fields(trajectories: list, cost: _Cost) -> dict[str, Any]:
    lags, served = cost.lags, cost.served
    return {
        # from taking a model slot to the parsed answer
        "mean_client_call_s": _mean([s.latency_s for t in trajectories for s in t.steps]),
        "mean_server_held_s": served.get("mean_held_s", 0.0),  # request read -> response written, server side
        "loop_lag_mean_ms": round(statistics.fmean(lags) * 1000, 2) if lags else 0.0,
        "loop_lag_p99_ms": round(sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else 0.0,
        "server_requests": served.get("requests", 0),
        "server_max_in_flight": served.get("max_in_flight", 0),
        "server_cpu_s": round(cost.server_cpu, 3),
    }


def _cpu_fields(rollouts: int, cost: _Cost) -> dict[str, Any]:
    cpu, wall, busy = cost.cpu, cost.wall, cost.busy
    return {
        # this process + everything it started (sandboxed commands, git, graders' pytest), not the server
        "client_cpu_s": round(cpu, 2),
        "client_cpu_exact": cost.cpu_exact,
        "client_cpu_s_per_rollout": round(cpu / rollouts, 3) if rollouts else 0.0,
        "client_cores": round(cpu / wall, 2) if wall > 0 else 0.0,
        # the most rollouts per minute this machine's cores could give at that CPU cost per rollout
        "cpu_ceiling_per_min": round((os.cpu_count() or 1) * 60.0 * rollouts / cpu, 1) if cpu > 0 else None,
        "machine_busy_cores": round(busy / wall, 2) if busy is not None and wall > 0 else None,
        # other users of this machine during the level (a shared machine skews every number)
        "other_cores": round(max(0.0, busy - cpu - cost.server_cpu) / wall, 2)
        if busy is not None and wall > 0 else None,
    }
