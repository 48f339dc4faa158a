"""Run shell commands in a rollout's workspace with hard limits.

A model's commands are untrusted: they may loop forever, print without end,
fork-bomb, eat memory, write outside the repository or reach the network. A
`Sandbox` runs each command with `bash -c` in the workspace and bounds all of
these:

- isolation: bubblewrap (when present) gives a read-only view of the system, a
  writable workspace, a private /tmp, and no network (fresh namespaces);
- time: the command's process tree is killed at the timeout (process group,
  plus the PID namespace under bubblewrap);
- output: only the head and tail are kept, and an endless printer is killed;
- memory: a cgroup memory limit on the whole tree when one can be made, else
  `ulimit -v` per process (which counts address space, not memory: JVMs, Go
  programs and some numpy/torch imports reserve far more than they use, so it
  is only the fallback);
- processes: a cgroup `pids.max`, because RLIMIT_NPROC does not bind root.

Each command gets fresh processes: nothing started by one command (say
`server &`) survives into the next. Files do: the workspace's, and those in the
sandbox's private /tmp (removed at `close`).

The parts, each in its own module: `oec.env.launch` (the argv every command
starts with: launcher shell, ulimits, bwrap; `oec.env.mounts` for what bwrap
shows), `oec.env.cgroups` (the cgroup: create, join, kill, remove),
`oec.env.process` (one command's process: run, time out, kill its tree) and
`oec.env.output` (the capped output and `CommandResult`). This module ties them
to one workspace and owns the sandbox's lifetime.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import tempfile
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from oec.env.cgroups import Cgroup, join_failed
from oec.env.launch import (
    bwrap_available,
    bwrap_prefix,
    command_env,
    launcher,
    visible_roots,
)
from oec.env.limits import SandboxLimits
from oec.env.output import (
    TRUSTED_OUTPUT_BYTES,
    CommandResult,
    OutputCap,
    command_result,
    output_ceiling,
)
from oec.env.process import Runner

__all__ = ["TRUSTED_OUTPUT_BYTES", "CommandResult", "SandboxLimits", "PatchUnavailable", "Sandbox", "SandboxError",
           "SandboxWarning", "bwrap_available"]

_warned: set[str] = set()


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as asked (missing bubblewrap, bad workspace, closed)."""


class PatchUnavailable(SandboxError):
    """A workspace's diff cannot be read (the model broke or deleted its `.git`): the rollout has no patch."""


class SandboxWarning(RuntimeWarning):
    """A limit that was asked for cannot be enforced on this machine."""


def _warn_once(key: str, message: str, stacklevel: int) -> None:
    """Warn about a machine-wide condition once per process, not once per sandbox or command.

    `stacklevel` counts from the caller of `_warn_once`, as for `warnings.warn`: the
    warning names the code that made the Sandbox, not this module."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, SandboxWarning, stacklevel=stacklevel + 1)


def _cleanup(cgroup: Cgroup | None, tmp: str) -> None:
    """Release what a Sandbox holds outside itself; safe to run at close, at GC, or at exit."""
    if cgroup is not None:
        cgroup.remove()
    shutil.rmtree(tmp, ignore_errors=True)


def _check_scratch_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")


def _use_bwrap(isolation: str) -> bool:
    """Whether commands run under bubblewrap, as `isolation` asks and this machine allows (warned when not)."""
    if isolation not in ("auto", "bwrap", "none"):
        raise SandboxError(f"isolation must be 'auto', 'bwrap' or 'none', not {isolation!r}")
    if isolation == "bwrap" and not bwrap_available():
        raise SandboxError("isolation='bwrap' but bubblewrap (bwrap) is not installed or cannot create "
                           "namespaces here; install it (apt-get install bubblewrap) or pass isolation='none'")
    isolated = isolation != "none" and bwrap_available()
    if not isolated:
        why = "isolation='none'" if isolation == "none" else "bubblewrap (bwrap) is not usable here"
        _warn_once("isolation", f"oec sandbox isolation is OFF ({why}): commands can write outside "
                                "the workspace and reach the network", stacklevel=3)
    return isolated


class Sandbox:
    """Runs shell commands in `workspace` with the limits in `limits`; see the module docstring.

    Made in two steps: `__init__` checks and keeps the arguments (a bad one raises
    SandboxError before anything exists), then `_start` acquires what the sandbox
    holds outside itself (a private /tmp folder, a cgroup) and arranges for its
    release. Release with `close` or a `with` block; garbage collection and
    interpreter exit release it too.
    """

    def __init__(
        self,
        workspace: Path,
        *,
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008 (a frozen dataclass: one shared default is safe)
        env: Mapping[str, str] | None = None,
        path_prepend: Sequence[Path] = (),
        isolation: Literal["auto", "bwrap", "none"] = "auto",
        read_only: Sequence[Path] = (),
    ) -> None:
        """`read_only`: folders or files commands may read besides the system, the interpreter and the
        workspace (a base store, oec's tool scripts); under bubblewrap nothing else of the host is there
        (`oec.env.mounts`). `path_prepend`: bin folders of a task's own Python, first on PATH and shown
        read-only with the installation they belong to. `env`: variables added to the minimal environment
        commands get (`oec.env.launch.command_env`)."""
        workspace = Path(workspace).resolve()
        if not workspace.is_dir():
            raise SandboxError(f"sandbox workspace {workspace} is not a directory")
        self.workspace = workspace
        self.limits = limits
        self._isolated = _use_bwrap(isolation)
        self._path_prepend = [Path(p).absolute() for p in path_prepend]
        self._read_only = [Path(p).resolve() for p in read_only]
        self._extra_env = dict(env or {})
        self._lock = threading.Lock()        # one command at a time: they share the cgroup
        self._closed = False
        self._start()

    def _start(self) -> None:
        """Acquire the sandbox's outside resources and build what every command starts with.

        - a private folder, /tmp under bwrap, else HOME; its name carries our pid so a
          later run can tell a dead run's leftovers (`oec.env.leftovers`);
        - a cgroup, or None where none can be made (then weaker ulimits stand in: warned);
        - a finalizer releasing both, at `close`, at garbage collection or at exit;
        - the command environment and the launch prefix (launcher shell, bwrap), fixed
          for the sandbox's life: built once, not per command.
        """
        self._tmp = tempfile.mkdtemp(prefix=f"oec-sandbox-{os.getpid()}-")
        self._cgroup = Cgroup.create(f"oec-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}", self.limits)
        self._finalizer = weakref.finalize(self, _cleanup, self._cgroup, self._tmp)
        if self._cgroup is None and os.geteuid() == 0:
            _warn_once("nproc", "oec sandbox: no writable cgroup with a pids controller, so max_processes "
                                "is NOT enforced (ulimit -u does not bind root): a fork bomb is not contained",
                       stacklevel=3)
        if not self.memory_cgroup:
            _warn_once("memory", "oec sandbox: no cgroup memory limit can be made here; memory is bounded by "
                                 "ulimit -v instead, which also refuses programs that only reserve address space "
                                 "(JVMs, Go, some numpy/torch imports)", stacklevel=3)
        self._env = command_env(self._path_prepend, home=self.scratch_inside) | self._extra_env
        self._prefix = launcher(self.limits, self._cgroup)
        if self._isolated:
            visible = visible_roots(self._path_prepend, self._read_only)
            self._prefix += bwrap_prefix(self.workspace, Path(self._tmp), visible)
        self._runner = Runner(self._cgroup)

    @property
    def isolated(self) -> bool:
        """True when commands run under bubblewrap."""
        return self._isolated

    @property
    def memory_cgroup(self) -> bool:
        """True when the kernel bounds the commands' memory (a cgroup), False when `ulimit -v` stands in."""
        return self._cgroup is not None and self._cgroup.memory_limited

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, command: str, *, timeout_s: float | None = None, output_bytes: int | None = None) -> CommandResult:
        """Run `command` with bash in the workspace and return what it printed and how it ended."""
        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        cap = OutputCap(self.limits.output_bytes if output_bytes is None else output_bytes)
        ceiling = output_ceiling(cap)
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            start = time.monotonic()
            reason, returncode = self._runner.run(self._argv(command), cwd=self.workspace, env=self._env, cap=cap,
                                                  deadline=start + timeout, ceiling=ceiling)
        exit_code = 128 - returncode if returncode < 0 else returncode
        if self._cgroup is not None and join_failed(exit_code, cap.text()):
            raise SandboxError(f"{cap.text().strip()}: the command was not run (was the cgroup removed?)")
        return command_result(command, cap, reason, exit_code, timeout, ceiling, time.monotonic() - start)

    def run_trusted(self, script: str, *, timeout_s: float | None = None,
                    max_output_bytes: int = TRUSTED_OUTPUT_BYTES) -> tuple[int, str, str]:
        """Run oec's own shell (git on a workspace a model has written) in the sandbox, never on the host.

        Returns (exit code, stdout, stderr): stdout whole (a patch must never be cut), stderr apart, read
        back from the sandbox's private /tmp under a name no command could guess. Raises SandboxError when
        the script ran out of time or printed more than `max_output_bytes`.
        """
        name = f"oec-stderr-{uuid.uuid4().hex}"
        inside = shlex.quote(f"{self.scratch_inside}/{name}")
        result = self.run(f"exec 2>{inside}\n{script}", timeout_s=timeout_s, output_bytes=max_output_bytes)
        stderr = self.read_scratch(name, limit=1 << 20).decode("utf-8", errors="replace")
        (Path(self._tmp) / name).unlink(missing_ok=True)
        if result.timed_out:
            raise SandboxError(f"oec's own command ran out of time in the sandbox: {stderr[-500:]}")
        if result.truncated or result.killed_reason:
            raise SandboxError(f"oec's own command printed more than {max_output_bytes} bytes in the sandbox")
        return (result.exit_code if result.exit_code is not None else -1), result.output, stderr

    @property
    def scratch_inside(self) -> str:
        """The sandbox's private /tmp as commands see it (the host folder itself when not isolated)."""
        return "/tmp" if self._isolated else self._tmp

    def write_scratch(self, name: str, data: bytes) -> str:
        """Put a file in the sandbox's private /tmp (a patch to apply, say); return its path inside."""
        _check_scratch_name(name)
        fd = os.open(Path(self._tmp) / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return f"{self.scratch_inside}/{name}"

    def read_scratch(self, name: str, *, limit: int) -> bytes:
        """Read a file a command left in the private /tmp; never through a symlink, at most `limit` bytes."""
        _check_scratch_name(name)
        try:
            fd = os.open(Path(self._tmp) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return b""
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return b""
            return fh.read(limit)

    def close(self) -> None:
        """Kill a command still running (from another thread), then release the cgroup and private /tmp."""
        self._closed = True
        self._runner.kill_running()
        with self._lock:
            self._finalizer()

    def _argv(self, command: str) -> list[str]:
        """`bash -c command` behind the launch prefix (the launcher shell, then bwrap if isolated)."""
        return [*self._prefix, "bash", "-c", command]
