"""What a level costs beyond wall time: CPU of the client and all it started, the machine's busy CPU, loop lag.

The client's CPU is the hard part: RUSAGE_CHILDREN misses what bubblewrap's PID namespace reaps, so
where a cgroup-v1 cpuacct hierarchy is writable the benchmark counts in a cpuacct group of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from pathlib import Path

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (sandbox commands, git, the graders' pytest)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _own_cpuacct_home(base: Path) -> Path | None:
    """This process's cpuacct group under `base`, or None where there is no cpuacct hierarchy."""
    own = next((line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                if "cpuacct" in line.split(":", 2)[1].split(",")), None)
    if own is None or not (base / "cpuacct.usage").exists():
        return None
    return base / own.lstrip("/")


def _remove_stale_groups(home: Path) -> None:
    """Groups left by a benchmark that was killed: empty, so rmdir works."""
    for stale in home.glob("oec-bench-*"):
        with contextlib.suppress(OSError, ValueError):
            if not Path(f"/proc/{int(stale.name.rsplit('-', 1)[1])}").exists():
                stale.rmdir()


def _join_new_group(home: Path) -> Path | None:
    """A fresh group under `home` with this process in it, or None where the move is refused."""
    group = home / f"oec-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        group.rmdir()
        return None
    return group


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
        try:
            home = _own_cpuacct_home(CPUACCT)
            if home is None:
                return
            _remove_stale_groups(home)
            group = _join_new_group(home)
            if group is not None:
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
        return cpu_seconds()

    def close(self) -> None:
        if self.group is None or self.home is None:
            return
        with contextlib.suppress(OSError):
            (self.home / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(200):  # the last children may still be exiting
            try:
                self.group.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        self.group = None


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), or None where unreadable.

    Sandboxed processes that bubblewrap's PID namespace reaps may not all roll up into RUSAGE_CHILDREN,
    and other users of the machine show up here too: both numbers are printed."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def watch_loop(lags: list[float], tick: float = 0.01) -> None:
    """How late the event loop wakes a sleeper (a starved loop delays every model call and every result)."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(tick)
        lags.append(time.perf_counter() - before - tick)
