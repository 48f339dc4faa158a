"""The launch command: the argv that starts each of a sandbox's commands, and the environment it gets.

Every command runs as

    <launcher shell> [bwrap <mounts> --] bash -c COMMAND

The launcher is one small shell, started with vfork, that joins the sandbox's
cgroup (when there is one), sets the per-process `ulimit`s (inherited by bwrap
and everything below it, and never raised again), then execs the rest. Both
prefixes are fixed for a sandbox's life, so they are built once, not per
command. What bwrap shows of the host is `oec.env.mounts`' job.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from oec.env.cgroups import Cgroup
from oec.env.host_env import scrubbed_env
from oec.env.limits import SandboxLimits
from oec.env.mounts import bwrap_args, interpreter_roots, python_env_roots

__all__ = ["bwrap_available", "bwrap_prefix", "command_env", "launcher", "shell_limits", "visible_roots"]

_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_POSIX_SH = "/bin/sh" if Path("/bin/sh").exists() else "bash"  # the launcher's shell (dash starts faster)


@functools.lru_cache(maxsize=1)
def bwrap_available() -> bool:
    """Whether bubblewrap is installed AND works here (it can be present but refused namespaces)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    with tempfile.TemporaryDirectory(prefix="oec-bwrap-probe-") as tmp:
        probe = [exe, *bwrap_args(Path(tmp), Path(tmp)), "--", "true"]
        try:
            return subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                                  env=scrubbed_env()).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def command_env(path_prepend: Sequence[Path], *, home: str) -> dict[str, str]:
    """A minimal environment for commands: nothing of the caller's (API keys!); the sandbox adds its `env`.

    `path_prepend` goes first on PATH, then this interpreter's bin folder, then the system's."""
    path = [str(p) for p in path_prepend] + [str(Path(sys.executable).parent), _SYSTEM_PATH]
    return {
        "PATH": os.pathsep.join(path),
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TERM": "dumb",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
    }


def visible_roots(path_prepend: Sequence[Path], read_only: Sequence[Path]) -> list[Path]:
    """What commands may read besides the system and the workspace: interpreters (this one, and the
    installations `path_prepend`'s bin folders belong to), then `read_only`."""
    roots = [*interpreter_roots()]
    for bin_dir in path_prepend:
        roots += python_env_roots(bin_dir)
    return [*roots, *read_only]


def bwrap_prefix(workspace: Path, tmp: Path, visible: Sequence[Path]) -> list[str]:
    """`bwrap <mounts> --`: fresh namespaces, the workspace writable, `tmp` as /tmp, `visible` read-only."""
    return [shutil.which("bwrap") or "bwrap", *bwrap_args(workspace, tmp, visible), "--"]


def shell_limits(limits: SandboxLimits, cgroup: Cgroup | None) -> list[str]:
    """The `ulimit`s set before the command runs (and that it cannot raise again).

    `ulimit -v` only without a memory cgroup: it caps each process's address space,
    which is not memory (a JVM reserves its heap, Go its arenas), and it cannot bound
    the tree as a whole, which the cgroup does. `ulimit -u` only without a cgroup
    (whose pids.max binds root too; ulimit -u binds non-root users only)."""
    lines = ["ulimit -c 0"]
    if cgroup is None or not cgroup.memory_limited:
        lines.insert(0, f"ulimit -v {limits.memory_mb * 1024}")
    if cgroup is None:
        lines.append(f"ulimit -u {limits.max_processes}")  # binds non-root users only
    return lines


def launcher(limits: SandboxLimits, cgroup: Cgroup | None) -> list[str]:
    """The shell that starts every command: it joins the cgroup, sets the per-process limits (inherited by
    bwrap and all below it), then execs the rest of the argv. One shell, started with vfork, for all three.

    `sh` where there is a cgroup; bash without one, for `ulimit -u` (dash's ulimit has no -u)."""
    steps = [cgroup.join_script()] if cgroup else ["shift"]
    files = cgroup.procs_files if cgroup else []
    shell = _POSIX_SH if cgroup else "bash"
    return [shell, "-c", "; ".join([*steps, *shell_limits(limits, cgroup), 'exec "$@"']), "oec-sandbox", *files, "--"]
