"""Rollout throughput of oec's collection path against a model server with a fixed latency per call.

Run from the repository root:

    .venv/bin/python benchmarks/throughput.py                      # the normal run (about 7 minutes on 2 cores)
    .venv/bin/python benchmarks/throughput.py --quick              # a short run (one wave per level)
    .venv/bin/python benchmarks/throughput.py --latency 1.0 --concurrency 1,8,32,64 --json results.json

What it does:

1. Starts a scripted OpenAI-compatible chat-completions server in its own
   process (asyncio, raw HTTP/1.1 with keep-alive; it serves hundreds of
   connections at once and only sleeps, so it is never the bottleneck). It
   stands in for a GPU model server: every call answers after exactly
   ``--latency`` seconds, with a native tool call of a fixed script (``ls``,
   ``grep -n def -r .``, a ``python -c`` that writes a file, then ``submit``):
   the same number of calls in every rollout, no format errors, and a real
   patch for the grader.
2. Runs ``bc`` rollouts (that server as the expert, ``openai:NAME`` through
   oec's own OpenAI backend) on the bundled suite through
   ``oec.collect.runner.collect``: real workspaces, the real sandbox
   (bubblewrap where it works), a real run directory, and grading ON as in a
   real run, then again with ``RolloutConfig(grade=False)`` (a zero-overhead
   client would not grade). Each concurrency level runs ``--waves`` rollouts
   per slot (tasks repeated with sample indices).
3. Prints per level: rollouts, wall seconds, rollouts per minute, the latency
   bound and the ratio to it, where the bound is what a zero-overhead client
   would reach with the same slots::

       bound = N / (ceil(N / c) * calls * latency) * 60   rollouts per minute

   (= c * 60 / (calls * latency) when c divides N, and capped by the N
   rollouts in flight when N <= c). PASS/FAIL against the target, ratio >=
   0.8 at concurrency 32, is printed for both grading modes (the bound knows
   nothing of grading, so the graded ratio shows what grading costs). A
   second table says where the time goes: setup, sandbox commands and
   queueing, grading, client vs server call time, event-loop lag, and CPU
   per rollout (with the other users of the machine, who skew it all).
4. Measures the per-command sandbox overhead: the same command run N times
   through ``Sandbox.run`` and through plain ``subprocess.run(["bash", "-c",
   cmd])`` (same workspace, same minimal environment, interleaved), with the
   mean milliseconds and their ratio.
5. Unless ``--quick`` or ``--no-experiments``: other client setups at
   c = 32, applied inside this process only (an option passed, the loop's
   executor replaced), never in src/, to show what the shipped choices are
   worth (see benchmarks/README.md):

   ``--model-slots cli``           ModelOptions' default of 8 model slots, which
                                   `oec collect` used before it passed
                                   max_concurrency = --concurrency;
   ``--threads N|auto``            the event loop's default thread pool (where
                                   ``asyncio.to_thread`` runs every sandbox
                                   command, workspace and grading) sized N
                                   (auto: c + 4) instead of asyncio's
                                   min(32, cpus + 4);
   ``--grading-slots concurrency`` as many gradings at once as rollouts,
                                   instead of one per core.

   The flags also apply to the main table when given.

``--json PATH`` writes every number printed. ``main(argv)`` returns the same
dict (the smoke test calls it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the scripted agent: one model call per entry, the last one submits; the python step writes a file, so
#: every rollout has a real (new-file) patch for the grader to apply before it runs the task's tests
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("bash", {"command": "ls"}),
    ("bash", {"command": "grep -n def -r ."}),
    ("bash", {"command": "python -c \"open('bench_note.txt', 'w').write('written by the benchmark\\n')\""}),
    ("submit", {}),
]
CALLS_PER_ROLLOUT = len(SCRIPT)
TARGET_CONCURRENCY = 32
TARGET_RATIO = 0.8
MODEL_NAME = "bench-expert"
#: oec's ModelOptions default, which `oec collect` / `oec eval` / `oec run` use as is
CLI_MODEL_SLOTS = 8


# --------------------------------------------------------------------------------------------------
# The scripted model server (runs in its own process: `throughput.py --serve`)
# --------------------------------------------------------------------------------------------------

def _completion_body(request: dict[str, Any], serial: int) -> dict[str, Any]:
    """The scripted reply: the step is the number of assistant turns already in the conversation."""
    messages = request.get("messages") or []
    step = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    tool, arguments = SCRIPT[min(step, len(SCRIPT) - 1)]
    prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict)) // 4
    return {
        "id": f"chatcmpl-bench-{serial}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL_NAME,
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": f"Step {step + 1}.",
                "tool_calls": [{"id": f"call_{serial}", "type": "function",
                                "function": {"name": tool, "arguments": json.dumps(arguments)}}],
            },
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 16, "total_tokens": prompt_tokens + 16},
    }


class _ServerStats:
    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self.held_s = 0.0  # request read -> response written, summed

    def snapshot(self, reset: bool) -> dict[str, Any]:
        out = {"requests": self.requests, "max_in_flight": self.max_in_flight, "connections": self.connections,
               "mean_held_s": round(self.held_s / self.requests, 4) if self.requests else 0.0,
               "cpu_s": round(time.process_time(), 3)}
        if reset:
            self.requests, self.max_in_flight, self.held_s = 0, self.in_flight, 0.0
        return out


async def _serve(latency: float) -> None:
    stats = _ServerStats()
    serial = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal serial
        stats.connections += 1
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    key, _, value = line.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, held_since = 200, None
                if method == "POST" and target.rstrip("/").endswith("/chat/completions"):
                    held_since = time.monotonic()
                    serial += 1
                    stats.requests += 1
                    stats.in_flight += 1
                    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                    try:
                        number = serial
                        await asyncio.sleep(latency)
                        payload = _completion_body(json.loads(body), number)
                    finally:
                        stats.in_flight -= 1
                elif method == "GET" and target.startswith("/stats"):
                    payload = stats.snapshot(reset="reset" in target)
                else:
                    status, payload = 404, {"error": {"message": f"no route {method} {target}"}}
                data = json.dumps(payload).encode()
                close = headers.get("connection", "").lower() == "close"
                head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
                        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
                        f"connection: {'close' if close else 'keep-alive'}\r\n\r\n")
                writer.write(head.encode() + data)
                await writer.drain()
                if held_since is not None:
                    stats.held_s += time.monotonic() - held_since
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class ModelServer:
    """The scripted server in a child process (so its work never shares this process's GIL)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", "--latency", repr(latency)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the model server did not start (said {line!r})")
        self.port = int(line.split()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/stats" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------------------------------
# Rollout throughput through oec.collect.runner.collect
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """How the client is set up: as `oec collect` does it, or with a proposed fix applied in-process."""

    model_slots: str = "concurrency"  # "concurrency": max_concurrency = c, as `oec collect` sets it; "cli": ModelOptions' default (8)
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


def _cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (sandbox commands, git, the graders' pytest)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class OwnCpu:
    """CPU seconds of this process and all its descendants, sandboxed ones included.

    RUSAGE_CHILDREN misses what runs under bubblewrap (its PID namespace's init
    reaps it), so where a cgroup-v1 cpuacct hierarchy is writable this process
    moves itself into a fresh cpuacct group for the benchmark (the sandbox's own
    pids/memory groups are other hierarchies, so its commands stay in it) and
    moves back at the end. Elsewhere: RUSAGE_SELF + RUSAGE_CHILDREN, marked as
    a lower bound.
    """

    def __init__(self) -> None:
        self.group: Path | None = None
        self.home: Path | None = None
        base = Path("/sys/fs/cgroup/cpuacct")
        try:
            own = next((line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                        if "cpuacct" in line.split(":", 2)[1].split(",")), None)
            if own is None or not (base / "cpuacct.usage").exists():
                return
            home = base / own.lstrip("/")
            for stale in home.glob("oec-bench-*"):  # left by a benchmark that was killed: empty, rmdir works
                with contextlib.suppress(OSError, ValueError):
                    if not Path(f"/proc/{int(stale.name.rsplit('-', 1)[1])}").exists():
                        stale.rmdir()
            group = home / f"oec-bench-{os.getpid()}"
            group.mkdir()
            try:
                (group / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                group.rmdir()
                return
            self.group, self.home = group, home
        except (OSError, IndexError):
            self.group = None

    @property
    def exact(self) -> bool:
        return self.group is not None

    def seconds(self) -> float:
        if self.group is not None:
            try:
                return int((self.group / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                pass
        return _cpu_seconds()

    def close(self) -> None:
        if self.group is None or self.home is None:
            return
        try:
            (self.home / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            pass
        for _ in range(200):  # the last children may still be exiting
            try:
                self.group.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        self.group = None


def _machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), or None where unreadable.

    Sandboxed processes that bubblewrap's PID namespace reaps may not all roll up into RUSAGE_CHILDREN,
    and other users of the machine show up here too: both numbers are printed."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 3) if values else 0.0


async def _watch_loop(lags: list[float], tick: float = 0.01) -> None:
    """How late the event loop wakes a sleeper (a starved loop delays every model call and every result)."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(tick)
        lags.append(time.perf_counter() - before - tick)


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
    watcher = asyncio.ensure_future(_watch_loop(lags))
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


def run_level(*, server: ModelServer, repos: Any, suite: list, work: Path, concurrency: int, rollouts: int,
              grade: bool, variant: Variant, meter: OwnCpu) -> dict[str, Any]:
    """One concurrency level: `rollouts` bc rollouts through collect(); the numbers of the table row."""
    from oec.collect.episode import EpisodeLimits
    from oec.collect.executors import default_grading_slots
    from oec.collect.rollout import RolloutConfig
    from oec.models.registry import ModelOptions, make_provider

    k, samples = split_rollouts(rollouts, len(suite))
    slots = variant.slots(concurrency)
    expert = make_provider(f"openai:{MODEL_NAME}", ModelOptions(
        base_url=server.base_url, native_tools=True, max_concurrency=slots, max_retries=0, timeout_s=60.0))
    tag = f"c{concurrency}-{'grade' if grade else 'nograde'}-{variant.model_slots}-{variant.threads}-{variant.grading_slots}"
    run_path = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))  # a fresh run directory: nothing to resume
    work_root = run_path / "ws"
    config = RolloutConfig(strategy="bc", student=None, expert=expert, switch=None, repos=repos, seed=0,
                           limits=EpisodeLimits(max_calls_per_model=CALLS_PER_ROLLOUT + 2), work_root=work_root,
                           grade=grade)
    cpu_server0 = server.stats(reset=True).get("cpu_s", 0.0)
    cpu0, busy0 = meter.seconds(), _machine_busy_seconds()
    summary, wall, lags = asyncio.run(_collect_level(suite[:k], samples, config, run_path / "run", concurrency,
                                               variant.pool_size(concurrency), variant.graders(concurrency)))
    cpu = meter.seconds() - cpu0
    busy1 = _machine_busy_seconds()
    busy = busy1 - busy0 if busy0 is not None and busy1 is not None else None
    served = server.stats()
    server_cpu = served.get("cpu_s", 0.0) - cpu_server0
    shutil.rmtree(run_path, ignore_errors=True)

    trajectories = summary.finished
    ok = [t for t in trajectories if t.exit_reason == "submitted" and t.patch
          and sum(u.calls for u in t.usage.values()) == CALLS_PER_ROLLOUT
          and (not grade or (t.reward is not None and t.reward.status in ("resolved", "unresolved")))]
    latency = server.latency
    bound = latency_bound(len(trajectories), concurrency, latency)
    rate = len(trajectories) / wall * 60.0 if wall > 0 else 0.0
    client_latency = [s.latency_s for t in trajectories for s in t.steps]
    timings = {key: _mean([t.timings.get(key, 0.0) for t in trajectories])
               for key in ("env_setup_s", "agent_s", "grade_s", "grade_wait_s", "total_s")}
    model_time = CALLS_PER_ROLLOUT * latency
    return {
        "concurrency": concurrency,
        "grade": grade,
        "variant": variant.label,
        "model_slots": slots,
        "thread_pool": variant.pool_size(concurrency) or default_pool_size(),
        "rollouts": len(trajectories),
        "tasks": k,
        "samples": samples,
        "ok_rollouts": len(ok),
        "exit_reasons": dict(summary.exit_reasons()),
        "resolved": summary.resolved,
        "wall_s": round(wall, 3),
        "rollouts_per_min": round(rate, 2),
        "latency_bound_per_min": round(bound, 2),
        "ratio": round(rate / bound, 3) if bound else 0.0,
        "mean_rollout_s": timings["total_s"],
        "mean_env_setup_s": timings["env_setup_s"],
        "mean_agent_s": timings["agent_s"],
        "mean_grade_s": timings["grade_s"],
        "mean_grade_wait_s": timings["grade_wait_s"],  # agent phase done, queued for a grading slot
        "grading_slots": (variant.graders(concurrency) or default_grading_slots(concurrency)) if grade else None,
        # agent time beyond the model's own latency: sandbox commands, thread-pool and model-slot queueing
        "mean_agent_overhead_s": round(timings["agent_s"] - model_time, 3),
        "mean_client_call_s": _mean(client_latency),  # from taking a model slot to the parsed answer
        "mean_server_held_s": served.get("mean_held_s", 0.0),  # request read -> response written, server side
        "loop_lag_mean_ms": round(statistics.fmean(lags) * 1000, 2) if lags else 0.0,
        "loop_lag_p99_ms": round(sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else 0.0,
        "server_requests": served.get("requests", 0),
        "server_max_in_flight": served.get("max_in_flight", 0),
        "server_cpu_s": round(server_cpu, 3),
        # this process + everything it started (sandboxed commands, git, graders' pytest), not the server
        "client_cpu_s": round(cpu, 2),
        "client_cpu_exact": meter.exact,
        "client_cpu_s_per_rollout": round(cpu / len(trajectories), 3) if trajectories else 0.0,
        "client_cores": round(cpu / wall, 2) if wall > 0 else 0.0,
        # the most rollouts per minute this machine's cores could give at that CPU cost per rollout
        "cpu_ceiling_per_min": round((os.cpu_count() or 1) * 60.0 * len(trajectories) / cpu, 1) if cpu > 0 else None,
        "machine_busy_cores": round(busy / wall, 2) if busy is not None and wall > 0 else None,
        # other users of this machine during the level (a shared machine skews every number)
        "other_cores": round(max(0.0, busy - cpu - server_cpu) / wall, 2) if busy is not None and wall > 0 else None,
    }


# --------------------------------------------------------------------------------------------------
# Per-command sandbox overhead
# --------------------------------------------------------------------------------------------------

def sandbox_overhead(repos: Any, task: Any, work: Path, reps: int,
                     commands: tuple[str, ...] = ("true", "python -c pass")) -> dict[str, Any]:
    """Mean ms of the same command through Sandbox.run and plain subprocess.run, interleaved, same run."""
    from oec.env.session import open_session

    session = open_session(task, repos, work_root=work / "ws-overhead", label="bench-overhead")
    sandbox = session.sandbox
    # the sandbox's minimal environment, so both run the same `python` with the same settings
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin:/usr/bin:/bin"]),
           "HOME": str(work), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    argv_of = getattr(sandbox, "_argv", None)  # private: the bwrap + bash argv Sandbox.run spawns (after its launcher)
    results: dict[str, Any] = {
        "isolated": bool(getattr(sandbox, "isolated", False)),
        "cgroup": getattr(sandbox, "_cgroup", None) is not None,
        "reps": reps,
        "commands": {},
    }

    def plain(cmd: str) -> None:
        subprocess.run(["bash", "-c", cmd], check=False, cwd=sandbox.workspace, env=env, capture_output=True)

    def same_argv(cmd: str) -> None:
        subprocess.run(argv_of(cmd), check=False, cwd=sandbox.workspace, env=env, capture_output=True)

    try:
        for cmd in commands:
            runners = {"sandbox": lambda c=cmd: sandbox.run(c), "plain": lambda c=cmd: plain(c)}
            if callable(argv_of):
                runners["argv"] = lambda c=cmd: same_argv(c)
            samples: dict[str, list[float]] = {name: [] for name in runners}
            for name, fn in runners.items():  # warm-up
                fn(), fn()
            for _ in range(reps):
                for name, fn in runners.items():
                    started = time.perf_counter()
                    fn()
                    samples[name].append((time.perf_counter() - started) * 1000.0)
            row = {f"{name}_ms": round(statistics.fmean(v), 2) for name, v in samples.items()}
            row.update({f"{name}_median_ms": round(statistics.median(v), 2) for name, v in samples.items()})
            row["ratio"] = round(row["sandbox_ms"] / row["plain_ms"], 2) if row["plain_ms"] else 0.0
            row["overhead_ms"] = round(row["sandbox_ms"] - row["plain_ms"], 2)
            results["commands"][cmd] = row
    finally:
        session.close()
    return results


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------

def _verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """PASS/FAIL of the target (ratio >= 0.8 at concurrency 32), per grading mode, where that level ran."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["concurrency"] == TARGET_CONCURRENCY:
            key = "grading_on" if row["grade"] else "grading_off"
            out[key] = {"ratio": row["ratio"], "pass": row["ratio"] >= TARGET_RATIO}
    return out


def print_report(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    meta = results["meta"]
    console.print(f"[bold]oec throughput[/]  latency {meta['latency_s']} s/call, {meta['calls_per_rollout']} calls "
                  f"per rollout, {meta['cpus']} CPUs, python {meta['python']}, bundled suite ({meta['suite_tasks']} "
                  f"tasks), asyncio default pool {meta['default_thread_pool']} threads, "
                  "model slots = concurrency (as `oec collect` sets them)")

    def fmt(value: Any, spec: str = ".2f") -> str:
        return "-" if value is None else format(value, spec)

    def rate_table(title: str, rows: list[dict[str, Any]], with_variant: bool) -> Table:
        table = Table(title=title, title_justify="left")
        names = ["conc", "grading", *(["client setup"] if with_variant else []), "rollouts", "ok", "wall s",
                 "rollouts/min", "bound/min", "ratio", "srv in flight", "CPU s/rollout", "CPU ceiling/min",
                 "others' cores"]
        for name in names:
            table.add_column(name, justify="left" if name in ("client setup", "grading") else "right")
        for r in rows:
            table.add_row(str(r["concurrency"]), "on" if r["grade"] else "off",
                          *([r["variant"]] if with_variant else []), str(r["rollouts"]), str(r["ok_rollouts"]),
                          f"{r['wall_s']:.1f}", f"{r['rollouts_per_min']:.1f}", f"{r['latency_bound_per_min']:.1f}",
                          f"{r['ratio']:.2f}", str(r["server_max_in_flight"]), fmt(r["client_cpu_s_per_rollout"]),
                          fmt(r.get("cpu_ceiling_per_min"), ".0f"), fmt(r.get("other_cores")))
        return table

    def time_table(title: str, rows: list[dict[str, Any]], with_variant: bool) -> Table:
        table = Table(title=title, title_justify="left")
        names = ["conc", "grading", *(["client setup"] if with_variant else []), "rollout s", "env s",
                 "agent extra s", "grade s", "grade wait s", "call s client", "call s server", "loop lag ms mean/p99",
                 "own cores"]
        for name in names:
            table.add_column(name, justify="left" if name in ("client setup", "grading") else "right")
        for r in rows:
            table.add_row(str(r["concurrency"]), "on" if r["grade"] else "off",
                          *([r["variant"]] if with_variant else []), fmt(r["mean_rollout_s"]),
                          fmt(r["mean_env_setup_s"]), fmt(r["mean_agent_overhead_s"]), fmt(r["mean_grade_s"]),
                          fmt(r.get("mean_grade_wait_s")),
                          fmt(r["mean_client_call_s"], ".3f"), fmt(r["mean_server_held_s"], ".3f"),
                          f"{r['loop_lag_mean_ms']:.1f}/{r['loop_lag_p99_ms']:.0f}", fmt(r["client_cores"]))
        return table

    def verdicts(items: dict[str, Any], prefix: str) -> None:
        for key, v in items.items():
            mark = "[green]PASS[/]" if v["pass"] else "[red]FAIL[/]"
            setup = f" with '{v['variant']}'" if "variant" in v else ""
            console.print(f"  {prefix}target ratio >= {TARGET_RATIO} at concurrency {TARGET_CONCURRENCY}{setup}, "
                          f"{key.replace('_', ' ')}: {v['ratio']:.2f} {mark}")

    console.print(rate_table(f"Rollout throughput, client setup: {meta['variant']}", results["levels"], False))
    console.print("  bound = N / (ceil(N/c) x calls x latency) x 60, what a zero-overhead client reaches; ok = "
                  "submitted after exactly the scripted calls, with a patch (and a grade); srv in flight = most calls "
                  "the server held at once; CPU s/rollout = this process and all it started (sandboxed commands, "
                  "git, grading)"
                  f"{'' if meta['cpu_exact'] else ' (LOWER BOUND: no cpuacct cgroup, sandboxed work not counted)'}; "
                  "CPU ceiling = cpus x 60 / CPU s per rollout; others' cores = the rest of the machine's busy CPU "
                  "(/proc/stat) meanwhile: other users of the machine skew every number")
    verdicts(results["verdict"], "")
    console.print(time_table("Where the time goes (means per rollout / per call)", results["levels"], False))
    console.print("  agent extra s = agent time beyond calls x latency (sandbox commands, HTTP client, waiting for a "
                  "thread or a model slot); grade wait s = queued for a grading slot (one per core) after the agent "
                  "phase gave its slot to the next rollout; call s client = from taking a model slot to the parsed answer; call s "
                  "server = request read to response written; loop lag = how late the event loop wakes a 10 ms "
                  "sleeper; own cores = this process and its children, CPU s per wall s")
    if results.get("experiments"):
        title = "Other client setups, applied in this process only (never in src/)"
        console.print(rate_table(title, results["experiments"], True))
        console.print(time_table(title + ": where the time goes", results["experiments"], True))
        verdicts(results.get("experiment_verdict", {}), "")

    box = results["sandbox_overhead"]
    table = Table(title=f"Per-command sandbox overhead ({box['reps']} runs each, interleaved; bwrap "
                        f"{'on' if box['isolated'] else 'OFF'}, cgroup {'on' if box['cgroup'] else 'off'})",
                  title_justify="left")
    for name in ("command", "Sandbox.run ms", "subprocess.run ms", "ratio", "overhead ms", "same argv, no Sandbox ms"):
        table.add_column(name, justify="left" if name == "command" else "right")
    for cmd, row in box["commands"].items():
        table.add_row(cmd, f"{row['sandbox_ms']:.1f}", f"{row['plain_ms']:.1f}", f"{row['ratio']:.1f}x",
                      f"{row['overhead_ms']:.1f}", f"{row['argv_ms']:.1f}" if "argv_ms" in row else "-")
    console.print(table)
    console.print("  same argv, no Sandbox = Sandbox's bwrap + bash command line through subprocess.run "
                  "(no launcher shell: no cgroup join or ulimits; no output pump, no kill sweep)")


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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


def main(argv: list[str] | None = None, console: Any = None) -> dict[str, Any]:
    """Run the benchmark; print the tables; return (and with --json write) every number."""
    args = parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.latency))
        return {}
    import warnings

    from rich.console import Console

    from oec.env.repos import RepoIndex
    from oec.tasks.bundled import bundled_repos_dir, load_bundled_tasks

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or redirected: wide enough for the tables
            console = Console(width=200)
    warnings.filterwarnings("ignore", module="oec.env.sandbox")
    suite = load_bundled_tasks()
    repos = RepoIndex([bundled_repos_dir()])
    variant = Variant(model_slots=args.model_slots, threads=args.threads, grading_slots=args.grading_slots)
    results: dict[str, Any] = {
        "meta": {"latency_s": args.latency, "calls_per_rollout": CALLS_PER_ROLLOUT, "cpus": os.cpu_count(),
                 "python": platform.python_version(), "suite_tasks": len(suite), "script": SCRIPT,
                 "default_thread_pool": default_pool_size(), "waves": args.waves, "quick": args.quick,
                 "variant": variant.label},
        "levels": [], "experiments": [],
    }
    with tempfile.TemporaryDirectory(prefix="oec-bench-") as tmp, contextlib.closing(ModelServer(args.latency)) as server:
        work = Path(tmp)
        meter = OwnCpu()  # after the server started: it is not counted as the client's
        results["meta"]["cpu_exact"] = meter.exact

        def level(c: int, grade: bool, v: Variant) -> dict[str, Any]:
            n = max(args.waves * c, args.min_rollouts)
            with console.status(f"concurrency {c}, grading {'on' if grade else 'off'}, {v.label}: {n} rollouts"):
                row = run_level(server=server, repos=repos, suite=suite, work=work, concurrency=c, rollouts=n,
                                grade=grade, variant=v, meter=meter)
            console.log(f"c={c} grade={'on' if grade else 'off'} [{v.label}]: {row['rollouts_per_min']:.1f}/min, "
                        f"ratio {row['ratio']:.2f}")
            return row

        try:
            for grade in args.grade_modes:
                for c in args.levels:
                    results["levels"].append(level(c, grade, variant))
            if args.experiments:
                # grading off (what the bound measures): the old cap of 8 model slots, a thread per rollout;
                # grading on: as many graders as rollouts instead of one per core
                fixes = {False: [Variant(model_slots="cli"), Variant(threads="auto")],
                         True: [Variant(grading_slots="concurrency")]}
                for c in args.experiment_levels:
                    for grade in sorted(args.grade_modes):
                        for v in fixes[grade]:
                            if v != variant:
                                results["experiments"].append(level(c, grade, v))
            with console.status("sandbox overhead"):
                results["sandbox_overhead"] = sandbox_overhead(repos, suite[0], work, args.sandbox_reps)
        finally:
            meter.close()
    results["verdict"] = _verdict(results["levels"])
    best: dict[str, Any] = {}
    for row in results["experiments"]:
        if row["concurrency"] == TARGET_CONCURRENCY:
            key = "grading_on" if row["grade"] else "grading_off"
            if key not in best or row["ratio"] > best[key]["ratio"]:
                best[key] = {"ratio": row["ratio"], "pass": row["ratio"] >= TARGET_RATIO, "variant": row["variant"]}
    results["experiment_verdict"] = best
    print_report(results, console)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
