"""Resource limits for a sandbox's whole process tree: one fresh cgroup per sandbox.

A cgroup bounds what per-process `ulimit`s cannot: the number of processes
(`pids.max`; RLIMIT_NPROC does not bind root, so a fork bomb would not be
contained) and the memory of the tree as a whole. It also lists every process
a command left behind, daemons that setsid'ed included, so all can be killed.

cgroup v1 needs one directory per controller (pids, memory); v2 has one. A
command joins the group from its own launcher shell (`Cgroup.join_script`),
never from Python, so each command can still be started with vfork.
`oec.env.leftovers` removes the groups of runs that died without cleaning up.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from oec.env.limits import SandboxLimits

__all__ = ["CGROUP_ROOT", "JOIN_FAILED", "JOIN_MARKER", "Cgroup", "join_failed", "own_cgroups"]

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")

JOIN_MARKER = "oec-sandbox: cannot join the cgroup"
JOIN_FAILED = 125            # exit status of the join prefix when it could not join (the command never ran)


def own_cgroups() -> dict[str, str]:
    """Map each cgroup controller ("" for the v2 hierarchy) to this process's cgroup path."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(","):
                paths[name] = parts[2]
    return paths


def join_failed(exit_code: int, output: str) -> bool:
    """Whether a command's launcher could not join its cgroup (and so never ran the command)."""
    return exit_code == JOIN_FAILED and output.startswith(JOIN_MARKER)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class Cgroup:
    """A fresh cgroup holding one sandbox's processes: limits them, and finds them all to kill.

    cgroup v1 needs one directory per controller (pids, memory); v2 has one directory.
    """

    def __init__(self, dirs: list[Path], *, memory_limited: bool = False) -> None:
        self.dirs = dirs
        #: whether the kernel enforces limits.memory_mb on the group (else the sandbox falls back to ulimit -v)
        self.memory_limited = memory_limited
        self._procs_files = [str(d / "cgroup.procs") for d in dirs]

    @classmethod
    def create(cls, name: str, limits: SandboxLimits) -> Cgroup | None:
        """Make the cgroup with pids.max (required) and a memory limit if the memory controller allows one
        (`memory_limited` says whether it does); None if no cgroup with pids.max can be made."""
        own = own_cgroups()
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(CGROUP_ROOT / own.get("", "/").lstrip("/"), name, limits)
        return cls._create_v1(own, name, limits)

    @classmethod
    def _create_v2(cls, parent: Path, name: str, limits: SandboxLimits) -> Cgroup | None:
        for controller in ("+pids", "+memory"):
            try:  # fails (harmlessly) when the parent holds processes itself
                _write(parent / "cgroup.subtree_control", controller)
            except OSError:
                pass
        try:
            child = parent / name
            child.mkdir()
        except OSError:
            return None
        group = cls._with_pids_limit(child, limits)
        if group is None:
            return None
        group.memory_limited = _set_memory(child, "memory.max", "memory.swap.max", "0", limits)
        return group

    @classmethod
    def _with_pids_limit(cls, folder: Path, limits: SandboxLimits) -> Cgroup | None:
        """A group of `folder` whose pids.max is set; None (and the folder removed) if it cannot be set."""
        group = cls([folder])
        try:
            _write(folder / "pids.max", str(limits.max_processes))
        except OSError:
            group.remove()
            return None
        return group

    @classmethod
    def _create_v1(cls, own: dict[str, str], name: str, limits: SandboxLimits) -> Cgroup | None:
        pids_dir = cls._make_v1_dir("pids", own, name)
        if pids_dir is None:
            return None
        group = cls._with_pids_limit(pids_dir, limits)
        if group is None:
            return None
        memory_dir = cls._make_v1_dir("memory", own, name)
        if memory_dir is not None:
            limit = str(limits.memory_mb << 20)  # memsw counts memory + swap: equal to the limit, no swap beyond
            if _set_memory(memory_dir, "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", limit, limits):
                group = cls([pids_dir, memory_dir], memory_limited=True)
            else:
                memory_dir.rmdir()
        return group

    @staticmethod
    def _make_v1_dir(controller: str, own: dict[str, str], name: str) -> Path | None:
        """mkdir a child of our own cgroup in one v1 hierarchy (or of its root, when ours is not visible)."""
        base = CGROUP_ROOT / controller
        if not (base / "cgroup.procs").exists():
            return None
        parent = base / own.get(controller, "/").lstrip("/")
        if not parent.is_dir():
            parent = base
        try:
            (parent / name).mkdir()
        except OSError:
            return None
        return parent / name

    def join_script(self) -> str:
        """Shell code that moves its own shell into the cgroup, consuming the cgroup.procs paths before `--`.

        Joining from the child's own shell, not from a Python `preexec_fn`, lets
        subprocess start it with vfork: a preexec_fn forces a full fork of this
        process (costly for a big one, a loaded model say) on every command. A
        failed join exits `JOIN_FAILED` with `JOIN_MARKER` and runs nothing.
        """
        return (f'while [ "$1" != -- ]; do echo $$ 2>/dev/null > "$1" || {{ echo "{JOIN_MARKER} $1" >&2; '
                f'exit {JOIN_FAILED}; }}; shift; done; shift')

    @property
    def procs_files(self) -> list[str]:
        return list(self._procs_files)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self._procs_files:
            try:
                found.update(int(p) for p in Path(procs).read_text().split())
            except OSError:
                pass
        return found

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup until none is left (a fork bomb keeps adding some)."""
        deadline = time.monotonic() + timeout_s
        kill_file = self.dirs[0] / "cgroup.kill"  # v2 only: the kernel kills them all at once
        nap = 0.0005
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                log.warning("sandbox: %d processes survived SIGKILL in %s", len(pids), self.dirs[0])
                return False
            if kill_file.exists():
                try:
                    _write(kill_file, "1")
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(nap)  # usually the last ones are just being reaped: look again soon
            nap = min(2 * nap, 0.02)

    def remove(self) -> None:
        """Kill what is left and delete the directories (retrying while the kernel reaps the dead)."""
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                log.warning("sandbox: could not remove cgroup %s", d)


def _set_memory(group: Path, limit_file: str, swap_file: str, swap_value: str, limits: SandboxLimits) -> bool:
    """Write the memory limit into `group`; True if the kernel took it. Swap is capped too where the
    kernel accounts it (else a command past the limit swaps instead of being killed): best effort."""
    try:
        _write(group / limit_file, str(limits.memory_mb << 20))
    except OSError:
        return False  # no memory controller in this group (v2: not enabled in the parent's subtree_control)
    try:
        _write(group / swap_file, swap_value)
    except OSError:
        pass  # no swap accounting (or no swap): nothing to cap
    return True
