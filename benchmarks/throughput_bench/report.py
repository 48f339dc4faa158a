"""The tables a run prints: the rates, where the time goes, the other client setups, the sandbox overhead.

Only formatting: every number comes from the results dict that ``--json`` writes.
"""

from __future__ import annotations

from typing import Any

from .script import TARGET_CONCURRENCY, TARGET_RATIO

RATE_NOTE = ("  bound = N / (ceil(N/c) x calls x latency) x 60, what a zero-overhead client reaches; ok = "
             "submitted after exactly the scripted calls, with a patch (and a grade); srv in flight = most calls "
             "the server held at once; CPU s/rollout = this process and all it started (sandboxed commands, "
             "git, grading){lower_bound}; "
             "CPU ceiling = cpus x 60 / CPU s per rollout; others' cores = the rest of the machine's busy CPU "
             "(/proc/stat) meanwhile: other users of the machine skew every number")
LOWER_BOUND = " (LOWER BOUND: no cpuacct cgroup, sandboxed work not counted)"
TIME_NOTE = ("  agent extra s = agent time beyond calls x latency (sandbox commands, HTTP client, waiting for a "
             "thread or a model slot); grade wait s = queued for a grading slot (one per core) after the agent "
             "phase gave its slot to the next rollout; call s client = from taking a model slot to the parsed answer; "
             "call s server = request read to response written; loop lag = how late the event loop wakes a 10 ms "
             "sleeper; own cores = this process and its children, CPU s per wall s")
SANDBOX_NOTE = ("  same argv, no Sandbox = Sandbox's bwrap + bash command line through subprocess.run "
                "(no launcher shell: no cgroup join or ulimits; no output pump, no kill sweep)")
RATE_COLUMNS = ["rollouts", "ok", "wall s", "rollouts/min", "bound/min", "ratio", "srv in flight", "CPU s/rollout",
                "CPU ceiling/min", "others' cores"]
TIME_COLUMNS = ["rollout s", "env s", "agent extra s", "grade s", "grade wait s", "call s client", "call s server",
                "loop lag ms mean/p99", "own cores"]


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _table(title: str, columns: list[str], with_variant: bool) -> Any:
    """A table whose first columns say which level (and client setup) a row is."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ["conc", "grading", *(["client setup"] if with_variant else []), *columns]:
        table.add_column(name, justify="left" if name in ("client setup", "grading") else "right")
    return table


def _level_cells(r: dict[str, Any], with_variant: bool) -> list[str]:
    return [str(r["concurrency"]), "on" if r["grade"] else "off", *([r["variant"]] if with_variant else [])]


def rate_table(title: str, rows: list[dict[str, Any]], with_variant: bool) -> Any:
    table = _table(title, RATE_COLUMNS, with_variant)
    for r in rows:
        table.add_row(*_level_cells(r, with_variant), str(r["rollouts"]), str(r["ok_rollouts"]),
                      f"{r['wall_s']:.1f}", f"{r['rollouts_per_min']:.1f}", f"{r['latency_bound_per_min']:.1f}",
                      f"{r['ratio']:.2f}", str(r["server_max_in_flight"]), fmt(r["client_cpu_s_per_rollout"]),
                      fmt(r.get("cpu_ceiling_per_min"), ".0f"), fmt(r.get("other_cores")))
    return table


def time_table(title: str, rows: list[dict[str, Any]], with_variant: bool) -> Any:
    table = _table(title, TIME_COLUMNS, with_variant)
    for r in rows:
        table.add_row(*_level_cells(r, with_variant), fmt(r["mean_rollout_s"]),
                      fmt(r["mean_env_setup_s"]), fmt(r["mean_agent_overhead_s"]), fmt(r["mean_grade_s"]),
                      fmt(r.get("mean_grade_wait_s")),
                      fmt(r["mean_client_call_s"], ".3f"), fmt(r["mean_server_held_s"], ".3f"),
                      f"{r['loop_lag_mean_ms']:.1f}/{r['loop_lag_p99_ms']:.0f}", fmt(r["client_cores"]))
    return table


def sandbox_table(box: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"Per-command sandbox overhead ({box['reps']} runs each, interleaved; bwrap "
                        f"{'on' if box['isolated'] else 'OFF'}, cgroup {'on' if box['cgroup'] else 'off'})",
                  title_justify="left")
    for name in ("command", "Sandbox.run ms", "subprocess.run ms", "ratio", "overhead ms", "same argv, no Sandbox ms"):
        table.add_column(name, justify="left" if name == "command" else "right")
    for cmd, row in box["commands"].items():
        table.add_row(cmd, f"{row['sandbox_ms']:.1f}", f"{row['plain_ms']:.1f}", f"{row['ratio']:.1f}x",
                      f"{row['overhead_ms']:.1f}", f"{row['argv_ms']:.1f}" if "argv_ms" in row else "-")
    return table


def print_verdicts(items: dict[str, Any], console: Any) -> None:
    for key, v in items.items():
        mark = "[green]PASS[/]" if v["pass"] else "[red]FAIL[/]"
        setup = f" with '{v['variant']}'" if "variant" in v else ""
        console.print(f"  target ratio >= {TARGET_RATIO} at concurrency {TARGET_CONCURRENCY}{setup}, "
                      f"{key.replace('_', ' ')}: {v['ratio']:.2f} {mark}")


def print_header(meta: dict[str, Any], console: Any) -> None:
    console.print(f"[bold]oec throughput[/]  latency {meta['latency_s']} s/call, {meta['calls_per_rollout']} calls "
                  f"per rollout, {meta['cpus']} CPUs, python {meta['python']}, bundled suite ({meta['suite_tasks']} "
                  f"tasks), asyncio default pool {meta['default_thread_pool']} threads, "
                  "model slots = concurrency (as `oec collect` sets them)")


def print_report(results: dict[str, Any], console: Any) -> None:
    meta = results["meta"]
    print_header(meta, console)
    console.print(rate_table(f"Rollout throughput, client setup: {meta['variant']}", results["levels"], False))
    console.print(RATE_NOTE.format(lower_bound="" if meta["cpu_exact"] else LOWER_BOUND))
    print_verdicts(results["verdict"], console)
    console.print(time_table("Where the time goes (means per rollout / per call)", results["levels"], False))
    console.print(TIME_NOTE)
    if results.get("experiments"):
        title = "Other client setups, applied in this process only (never in src/)"
        console.print(rate_table(title, results["experiments"], True))
        console.print(time_table(title + ": where the time goes", results["experiments"], True))
        print_verdicts(results.get("experiment_verdict", {}), console)
    console.print(sandbox_table(results["sandbox_overhead"]))
    console.print(SANDBOX_NOTE)
