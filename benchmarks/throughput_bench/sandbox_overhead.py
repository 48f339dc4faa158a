"""What one command costs through ``Sandbox.run`` against plain ``subprocess.run``, measured side by side.

Both run the same command in the same workspace with the sandbox's minimal environment, interleaved
(so a busy moment of the machine hits both); where the sandbox exposes its bwrap + bash argv, that
argv is timed too, to separate bubblewrap's cost from the launcher's.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMMANDS = ("true", "python -c pass")


def _minimal_env(work: Path) -> dict[str, str]:
    """The sandbox's minimal environment, so both run the same `python` with the same settings."""
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin:/usr/bin:/bin"]),
            "HOME": str(work), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}


def _runners(sandbox: Any, cmd: str, env: dict[str, str]) -> dict[str, Callable[[], Any]]:
    """The ways to run `cmd`, by name: through Sandbox.run, plain bash, and (where known) the sandbox's argv."""
    def plain() -> None:
        subprocess.run(["bash", "-c", cmd], check=False, cwd=sandbox.workspace, env=env, capture_output=True)

    runners: dict[str, Callable[[], Any]] = {"sandbox": lambda: sandbox.run(cmd), "plain": plain}
    argv_of = getattr(sandbox, "_argv", None)  # private: the bwrap + bash argv Sandbox.run spawns (after its launcher)
    if callable(argv_of):
        def same_argv() -> None:
            subprocess.run(argv_of(cmd), check=False, cwd=sandbox.workspace, env=env, capture_output=True)

        runners["argv"] = same_argv
    return runners


def _time_interleaved(runners: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Milliseconds per run, by runner: two warm-up runs each, then `reps` rounds of one run each."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():  # warm-up
        fn(), fn()
    for _ in range(reps):
        for name, fn in runners.items():
            started = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - started) * 1000.0)
    return samples


def _row(samples: dict[str, list[float]]) -> dict[str, float]:
    row = {f"{name}_ms": round(statistics.fmean(v), 2) for name, v in samples.items()}
    row.update({f"{name}_median_ms": round(statistics.median(v), 2) for name, v in samples.items()})
    row["ratio"] = round(row["sandbox_ms"] / row["plain_ms"], 2) if row["plain_ms"] else 0.0
    row["overhead_ms"] = round(row["sandbox_ms"] - row["plain_ms"], 2)
    return row


def sandbox_overhead(repos: Any, task: Any, work: Path, reps: int,
                     commands: tuple[str, ...] = COMMANDS) -> dict[str, Any]:
    """Mean ms of the same command through Sandbox.run and plain subprocess.run, interleaved, same run."""
    from oec.env.session import open_session

    session = open_session(task, repos, work_root=work / "ws-overhead", label="bench-overhead")
    sandbox = session.sandbox
    env = _minimal_env(work)
    results: dict[str, Any] = {
        "isolated": bool(getattr(sandbox, "isolated", False)),
        "cgroup": getattr(sandbox, "_cgroup", None) is not None,
        "reps": reps,
        "commands": {},
    }
    try:
        for cmd in commands:
            results["commands"][cmd] = _row(_time_interleaved(_runners(sandbox, cmd, env), reps))
    finally:
        session.close()
    return results
