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
"""

from __future__ import annotations

import functools
import logging
import os
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from oec.env.host_env import scrubbed_env
from oec.env.mounts import bwrap_args, interpreter_roots, python_env_roots

__all__ = ["CommandResult", "Limits", "PatchUnavailable", "Sandbox", "SandboxError", "SandboxWarning", "bwrap_available"]

log = logging.getLogger(__name__)

_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_READ_CHUNK = 1 << 16
_POLL_S = 0.05
_DRAIN_GRACE_S = 1.0          # how long to wait for the pipe to close once the tree is killed
_CEILING_FACTOR = 20          # an endless printer is killed after this many times output_bytes ...
_MIN_CEILING = 4 << 20        # ... but never before 4 MiB, so a chatty build log is not cut short

_JOIN_MARKER = "oec-sandbox: cannot join the cgroup"
_JOIN_FAILED = 125            # exit status of the join prefix when it could not join (the command never ran)

_POSIX_SH = "/bin/sh" if Path("/bin/sh").exists() else "bash"  # the launcher's shell (dash starts faster)

#: oec's own commands (a rollout's diff) may print this much before they are refused as too big
TRUSTED_OUTPUT_BYTES = 64 << 20

_warned: set[str] = set()


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as asked (missing bubblewrap, bad workspace, closed)."""


class PatchUnavailable(SandboxError):
    """A workspace's diff cannot be read (the model broke or deleted its `.git`): the rollout has no patch."""


class SandboxWarning(RuntimeWarning):
    """A limit that was asked for cannot be enforced on this machine."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 300.0        # wall clock per command; the whole process tree is killed
    output_bytes: int = 100_000     # cap on captured output (stdout+stderr merged)
    memory_mb: int = 4096           # address-space / memory cap
    max_processes: int = 256        # fork-bomb guard


@dataclass
class CommandResult:
    command: str
    exit_code: int | None           # None when killed by the sandbox
    output: str                     # merged stdout+stderr, truncated with a visible marker
    truncated: bool
    timed_out: bool
    killed_reason: str | None       # "timeout" | "output_limit" | None
    duration_s: float


def _warn_once(key: str, message: str) -> None:
    """Warn about a machine-wide condition once per process, not once per sandbox or command."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, SandboxWarning, stacklevel=3)


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


class _OutputCap:
    """Keeps the first and last bytes of a stream within `limit`, counting what falls between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self.tail_limit
            if excess > 0:
                del self.tail[:excess]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return f"{head}\n[... {self.dropped} bytes truncated ...]\n{tail}"


def _own_cgroups() -> dict[str, str]:
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


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class _Cgroup:
    """A fresh cgroup holding one sandbox's processes: limits them, and finds them all to kill.

    cgroup v1 needs one directory per controller (pids, memory); v2 has one directory.
    """

    def __init__(self, dirs: list[Path], *, memory_limited: bool = False) -> None:
        self.dirs = dirs
        #: whether the kernel enforces limits.memory_mb on the group (else the sandbox falls back to ulimit -v)
        self.memory_limited = memory_limited
        self._procs_files = [str(d / "cgroup.procs") for d in dirs]

    @classmethod
    def create(cls, name: str, limits: Limits) -> _Cgroup | None:
        """Make the cgroup with pids.max (required) and a memory limit if the memory controller allows one
        (`memory_limited` says whether it does); None if no cgroup with pids.max can be made."""
        own = _own_cgroups()
        if (_CGROUP_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(_CGROUP_ROOT / own.get("", "/").lstrip("/"), name, limits)
        return cls._create_v1(own, name, limits)

    @classmethod
    def _create_v2(cls, parent: Path, name: str, limits: Limits) -> _Cgroup | None:
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
        group = cls([child])
        try:
            _write(child / "pids.max", str(limits.max_processes))
        except OSError:
            group.remove()
            return None
        group.memory_limited = _set_memory(child, "memory.max", "memory.swap.max", "0", limits)
        return group

    @classmethod
    def _create_v1(cls, own: dict[str, str], name: str, limits: Limits) -> _Cgroup | None:
        pids_dir = cls._make_v1_dir("pids", own, name)
        if pids_dir is None:
            return None
        group = cls([pids_dir])
        try:
            _write(pids_dir / "pids.max", str(limits.max_processes))
        except OSError:
            group.remove()
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
        base = _CGROUP_ROOT / controller
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
        failed join exits `_JOIN_FAILED` with `_JOIN_MARKER` and runs nothing.
        """
        return (f'while [ "$1" != -- ]; do echo $$ 2>/dev/null > "$1" || {{ echo "{_JOIN_MARKER} $1" >&2; '
                f'exit {_JOIN_FAILED}; }}; shift; done; shift')

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


def _set_memory(group: Path, limit_file: str, swap_file: str, swap_value: str, limits: Limits) -> bool:
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


def _cleanup(cgroup: _Cgroup | None, tmp: str) -> None:
    """Release what a Sandbox holds outside itself; safe to run at close, at GC, or at exit."""
    if cgroup is not None:
        cgroup.remove()
    shutil.rmtree(tmp, ignore_errors=True)


def _check_scratch_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, WITHOUT reaping it: its pid (= our process group id)
    stays reserved, so killing the group afterwards cannot hit a stranger that reused the pid."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits (Linux >= 5.3), or None where unsupported."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def command_result(command: str, cap: _OutputCap, reason: str | None, exit_code: int | None, timeout: float,
                   ceiling: int, duration_s: float) -> CommandResult:
    """What every backend returns: the capped output, the same note when the sandbox killed the command."""
    output = cap.text()
    if reason == "timeout":
        output += f"\n[... command timed out after {timeout:g} s; its processes were killed ...]"
    elif reason == "output_limit":
        output += f"\n[... command killed: it printed more than {ceiling} bytes ...]"
    return CommandResult(command=command, exit_code=None if reason else exit_code, output=output,
                         truncated=cap.dropped > 0, timed_out=reason == "timeout", killed_reason=reason,
                         duration_s=duration_s)


class Sandbox:
    """Runs shell commands in `workspace` with the limits in `limits`; see the module docstring."""

    def __init__(
        self,
        workspace: Path,
        *,
        limits: Limits = Limits(),
        env: Mapping[str, str] | None = None,
        path_prepend: Sequence[Path] = (),
        isolation: Literal["auto", "bwrap", "none"] = "auto",
        read_only: Sequence[Path] = (),
    ) -> None:
        """`read_only`: folders or files commands may read besides the system, the interpreter and the
        workspace (a base store, oec's tool scripts); under bubblewrap nothing else of the host is there
        (`oec.env.mounts`). `path_prepend`: bin folders of a task's own Python, first on PATH and shown
        read-only with the installation they belong to."""
        workspace = Path(workspace).resolve()
        if not workspace.is_dir():
            raise SandboxError(f"sandbox workspace {workspace} is not a directory")
        if isolation not in ("auto", "bwrap", "none"):
            raise SandboxError(f"isolation must be 'auto', 'bwrap' or 'none', not {isolation!r}")
        if isolation == "bwrap" and not bwrap_available():
            raise SandboxError("isolation='bwrap' but bubblewrap (bwrap) is not installed or cannot create "
                               "namespaces here; install it (apt-get install bubblewrap) or pass isolation='none'")
        self.workspace = workspace
        self.limits = limits
        self._isolated = isolation != "none" and bwrap_available()
        if not self._isolated:
            why = "isolation='none'" if isolation == "none" else "bubblewrap (bwrap) is not usable here"
            _warn_once("isolation", f"oec sandbox isolation is OFF ({why}): commands can write outside "
                                    "the workspace and reach the network")
        self._path_prepend = [Path(p).absolute() for p in path_prepend]
        self._read_only = [Path(p).resolve() for p in read_only]
        # /tmp under bwrap, else HOME; the pid lets a later run tell a dead run's leftovers (oec.env.leftovers)
        self._tmp = tempfile.mkdtemp(prefix=f"oec-sandbox-{os.getpid()}-")
        self._env = self._base_env() | dict(env or {})
        self._cgroup = _Cgroup.create(f"oec-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}", limits)
        if self._cgroup is None and os.geteuid() == 0:
            _warn_once("nproc", "oec sandbox: no writable cgroup with a pids controller, so max_processes "
                                "is NOT enforced (ulimit -u does not bind root): a fork bomb is not contained")
        if not self.memory_cgroup:
            _warn_once("memory", "oec sandbox: no cgroup memory limit can be made here; memory is bounded by "
                                 "ulimit -v instead, which also refuses programs that only reserve address space "
                                 "(JVMs, Go, some numpy/torch imports)")
        self._finalizer = weakref.finalize(self, _cleanup, self._cgroup, self._tmp)
        # what goes before every command is fixed for the sandbox's life: built once, not per command
        self._launch = self._launcher()
        self._bwrap = ([shutil.which("bwrap") or "bwrap", *bwrap_args(self.workspace, Path(self._tmp),
                                                                        self._visible()), "--"]
                       if self._isolated else [])
        self._lock = threading.Lock()        # one command at a time: they share the cgroup
        self._proc_lock = threading.Lock()   # guards _proc between run() and close()
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

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
        cap = _OutputCap(self.limits.output_bytes if output_bytes is None else output_bytes)
        ceiling = max(_CEILING_FACTOR * (cap.head_limit + cap.tail_limit), _MIN_CEILING)
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            start = time.monotonic()
            proc = self._spawn(command)
            try:
                reason = self._pump(proc, cap, start + timeout, ceiling)
            finally:
                with self._proc_lock:
                    self._kill_tree(proc)
                    self._drain(proc, cap, ceiling)
                    returncode = proc.wait()
                    proc.stdout.close()  # type: ignore[union-attr]
                    self._proc = None
        exit_code = 128 - returncode if returncode < 0 else returncode
        if exit_code == _JOIN_FAILED and self._cgroup is not None and cap.text().startswith(_JOIN_MARKER):
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
        with self._proc_lock:
            if self._proc is not None:
                self._kill_tree(self._proc)
        with self._lock:
            self._finalizer()

    def _base_env(self) -> dict[str, str]:
        """A minimal environment: nothing of the caller's (API keys!) except what `env` adds."""
        path = [str(p) for p in self._path_prepend] + [str(Path(sys.executable).parent), _SYSTEM_PATH]
        return {
            "PATH": os.pathsep.join(path),
            "HOME": "/tmp" if self._isolated else self._tmp,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "TERM": "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
        }

    def _shell_limits(self) -> list[str]:
        """The `ulimit`s set before the command runs (and that it cannot raise again).

        `ulimit -v` only without a memory cgroup: it caps each process's address space,
        which is not memory (a JVM reserves its heap, Go its arenas), and it cannot bound
        the tree as a whole, which the cgroup does."""
        limits = ["ulimit -c 0"]
        if not self.memory_cgroup:
            limits.insert(0, f"ulimit -v {self.limits.memory_mb * 1024}")
        if self._cgroup is None:
            limits.append(f"ulimit -u {self.limits.max_processes}")  # binds non-root users only
        return limits

    def _launcher(self) -> list[str]:
        """The shell that starts every command: it joins the cgroup, sets the per-process limits (inherited by
        bwrap and all below it), then execs the rest of the argv. One shell, started with vfork, for all three.

        `sh` where there is a cgroup; bash without one, for `ulimit -u` (dash's ulimit has no -u)."""
        steps = [self._cgroup.join_script()] if self._cgroup else ["shift"]
        files = self._cgroup.procs_files if self._cgroup else []
        shell = _POSIX_SH if self._cgroup else "bash"
        return [shell, "-c", "; ".join([*steps, *self._shell_limits(), 'exec "$@"']), "oec-sandbox", *files, "--"]

    def _argv(self, command: str) -> list[str]:
        """`bash -c command`, wrapped in bwrap if isolated (the launcher goes in front of it)."""
        return [*self._bwrap, "bash", "-c", command]

    def _visible(self) -> list[Path]:
        """What commands may read besides the system and the workspace: interpreters, then `read_only`."""
        roots = [*interpreter_roots()]
        for bin_dir in self._path_prepend:
            roots += python_env_roots(bin_dir)
        return [*roots, *self._read_only]

    def _spawn(self, command: str) -> subprocess.Popen[bytes]:
        """Start the command in its own session (so its group can be killed) and inside the cgroup."""
        proc = subprocess.Popen(
            [*self._launch, *self._argv(command)],
            cwd=self.workspace,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._proc = proc
        return proc

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], cap: _OutputCap, deadline: float, ceiling: int) -> str | None:
        """Copy output into `cap` until the command exits; return why it must be killed, if it must.

        The wait is on the pipe and on a pidfd of the process together, so an exit
        is seen at once, without polling (where pidfds are missing: polling, backing off).
        """
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        exit_fd = _pidfd(proc.pid)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ, "output")
                if exit_fd is not None:
                    sel.register(exit_fd, selectors.EVENT_READ, "exit")
                open_pipe, nap = True, 0.001
                while not _has_exited(proc):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return "timeout"
                    if not open_pipe and exit_fd is None:  # output closed, usually because it is exiting
                        time.sleep(min(nap, remaining))
                        nap = min(2 * nap, _POLL_S)
                        continue
                    for key, _ in sel.select(min(_POLL_S, remaining)):
                        if key.data != "output":
                            continue  # the process exited: the loop's test sees it
                        chunk = os.read(fd, _READ_CHUNK)
                        if not chunk:
                            sel.unregister(fd)
                            open_pipe = False
                        cap.add(chunk)
                        if cap.total > ceiling:
                            return "output_limit"
        finally:
            if exit_fd is not None:
                os.close(exit_fd)
        return None

    @staticmethod
    def _drain(proc: subprocess.Popen[bytes], cap: _OutputCap, ceiling: int) -> None:
        """Read what is left in the pipe once the tree is dead (bounded, in case something escaped)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + _DRAIN_GRACE_S
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while cap.total <= ceiling and (remaining := deadline - time.monotonic()) > 0:
                if sel.select(remaining):
                    chunk = os.read(fd, _READ_CHUNK)
                    if not chunk:
                        return
                    cap.add(chunk)

    def _kill_tree(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the command's process group and everything in the cgroup (daemons that setsid'ed too).

        Under bubblewrap, killing bwrap also takes down its PID namespace (--die-with-parent)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._cgroup is not None:
            self._cgroup.kill_all()
