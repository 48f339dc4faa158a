"""Find and remove what killed runs left behind: workspaces, sandbox temp dirs and cgroups.

A run killed with SIGKILL (or a Ray worker killed on cancel) cannot clean up
after itself. Everything a rollout creates outside the run directory carries
its creator's pid in the name:

- workspaces: ``<work root>/<label>-<pid>-<8 random chars>`` (`Workspace.create`),
- sandbox private /tmp dirs: ``<temp dir>/oec-sandbox-<pid>-<random>``,
- cgroups: ``oec-sandbox-<pid>-<8 hex>`` under the pids and memory hierarchies.

`sweep` removes those whose pid is no longer alive on this machine (plus,
when asked, those of given pids: a run that abandons its rollouts sweeps its
own). A live pid's leftovers are never touched, so concurrent runs sharing a
work root are safe. A pid reused by a process that started after the
leftover was made does not count as alive; any doubt keeps the leftover:
garbage is kept rather than a live run's files deleted. Work roots can be user folders, so a workspace is only
recognized by its name AND its content (empty, or a git checkout).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from oec.env.cgroups import CGROUP_ROOT, Cgroup, own_cgroups
from oec.env.workspace import remove_workspace

_WORKSPACE = re.compile(r".+-(?P<pid>\d+)-[a-z0-9_]{8}")
_SANDBOX_TMP = re.compile(r"oec-sandbox-(?P<pid>\d+)-[a-z0-9_]+")
_CGROUP = re.compile(r"oec-sandbox-(?P<pid>\d+)-[0-9a-f]{8}")


@dataclass
class SweepReport:
    workspaces: list[Path] = field(default_factory=list)
    sandbox_dirs: list[Path] = field(default_factory=list)
    cgroups: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.workspaces) + len(self.sandbox_dirs) + len(self.cgroups)

    def __str__(self) -> str:
        return (f"{len(self.workspaces)} workspace(s), {len(self.sandbox_dirs)} sandbox temp dir(s), "
                f"{len(self.cgroups)} cgroup(s)")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start(pid: int) -> float | None:
    """When process `pid` started (epoch seconds, up to 1 s early: boot time is whole seconds); None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def creator_alive(pid: int, path: Path) -> bool:
    """Whether the process that made `path` may still be running: `pid` is alive and was not started
    after `path` was made (pids are reused, and only 32768 of them by default)."""
    if not pid_alive(pid):
        return False
    started = _process_start(pid)
    try:
        info = path.stat()
    except OSError:
        return True
    return started is None or started <= min(info.st_mtime, info.st_ctime) + 1.0


def _remove_tree(path: Path) -> bool:
    """Remove a leftover (`.git` last), retried briefly: a dead run's last sandboxed processes may still
    be dying and writing, and a sweep killed half-way must leave a workspace the next one recognizes."""
    for attempt in range(5):
        remove_workspace(path)
        if not path.exists():
            return True
        time.sleep(0.05 * (attempt + 1))
    return False


def _is_workspace(path: Path) -> bool:
    """Empty (killed right after mkdtemp) or a git checkout: never some other folder of the user's."""
    try:
        return path.is_dir() and not path.is_symlink() and ((path / ".git").exists() or not any(path.iterdir()))
    except OSError:
        return False


def _children(root: Path) -> Iterable[Path]:
    try:
        return list(root.iterdir())
    except OSError:
        return []


def cgroup_parents() -> list[Path]:
    """Where `Sandbox` makes its cgroups: our own cgroup in each hierarchy (v2: one, v1: pids and memory)."""
    own = own_cgroups()
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT / own.get("", "/").lstrip("/")]
    parents = []
    for controller in ("pids", "memory"):
        base = CGROUP_ROOT / controller
        mine = base / own.get(controller, "/").lstrip("/")
        parents += [p for p in dict.fromkeys((mine, base)) if p.is_dir()]
    return parents


def sweep(work_roots: Iterable[Path], *, temp_dir: Path | None = None, also_pids: Collection[int] = (),
          cgroup_roots: Iterable[Path] | None = None) -> SweepReport:
    """Remove leftovers of dead processes (and of `also_pids`) from these work roots, the temp dir and cgroups."""
    def doomed(match: re.Match[str] | None, path: Path) -> bool:
        if match is None:
            return False
        pid = int(match.group("pid"))
        return pid in also_pids or not creator_alive(pid, path)

    report = SweepReport()
    # cgroups first: killing a dead run's stray commands stops them writing into the folders removed next
    for parent in cgroup_parents() if cgroup_roots is None else cgroup_roots:
        for group in _children(parent):
            if group.is_dir() and doomed(_CGROUP.fullmatch(group.name), group):
                Cgroup([group]).remove()
                if not group.exists():
                    report.cgroups.append(group)
    for root in dict.fromkeys(Path(r) for r in work_roots):
        for path in _children(root):
            if doomed(_WORKSPACE.fullmatch(path.name), path) and _is_workspace(path) and _remove_tree(path):
                report.workspaces.append(path)
    for path in _children(Path(temp_dir or tempfile.gettempdir())):
        if (path.is_dir() and not path.is_symlink() and doomed(_SANDBOX_TMP.fullmatch(path.name), path)
                and _remove_tree(path)):
            report.sandbox_dirs.append(path)
    return report
