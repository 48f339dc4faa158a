"""Process control: run one command's process to its end, within its time and output limits, then kill its tree.

A command is started in its own session, so its process group can be killed,
and its output is read until it exits, runs out of time, or prints past the
ceiling. Whatever the reason it stops, everything it started is then killed:
its process group, and every process in the sandbox's cgroup (which finds
daemons that setsid'ed away from the group too). Under bubblewrap, killing
bwrap also takes down its PID namespace (--die-with-parent).

`Runner` keeps track of the running process so that another thread (a
sandbox's `close`) can kill it while `run` waits on it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from oec.env.cgroups import Cgroup
from oec.env.output import OutputCap

__all__ = ["Runner", "drain", "has_exited", "kill_tree", "pidfd", "pump", "spawn"]

_READ_CHUNK = 1 << 16
_POLL_S = 0.05
_DRAIN_GRACE_S = 1.0          # how long to wait for the pipe to close once the tree is killed


class Runner:
    """Runs commands' processes one after another, and kills the running one on request from any thread."""

    def __init__(self, cgroup: Cgroup | None) -> None:
        self._cgroup = cgroup
        self._proc_lock = threading.Lock()   # guards _proc between run() and kill_running()
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], cap: OutputCap, deadline: float,
            ceiling: int) -> tuple[str | None, int]:
        """Run `argv` to its end, its output into `cap`; return why it was killed (None if it was not) and
        its return code. Its whole tree is killed afterwards in any case. Not for concurrent use: the
        caller runs one command at a time (they share the cgroup)."""
        proc = spawn(argv, cwd=cwd, env=env)
        self._proc = proc
        try:
            reason = pump(proc, cap, deadline, ceiling)
        finally:
            with self._proc_lock:
                kill_tree(proc, self._cgroup)
                drain(proc, cap, ceiling)
                returncode = proc.wait()
                proc.stdout.close()  # type: ignore[union-attr]
                self._proc = None
        return reason, returncode

    def kill_running(self) -> None:
        """Kill the process tree of the command running now, if one is."""
        with self._proc_lock:
            if self._proc is not None:
                kill_tree(self._proc, self._cgroup)


def spawn(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so its group can be killed), stdout and stderr merged into one pipe.

    Joining the cgroup is the launcher's job (`oec.env.launch`): no preexec_fn, so subprocess can vfork."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, WITHOUT reaping it: its pid (= our process group id)
    stays reserved, so killing the group afterwards cannot hit a stranger that reused the pid."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits (Linux >= 5.3), or None where unsupported."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def pump(proc: subprocess.Popen[bytes], cap: OutputCap, deadline: float, ceiling: int) -> str | None:
    """Copy output into `cap` until the command exits; return why it must be killed, if it must
    ("timeout" past `deadline`, "output_limit" past `ceiling` bytes).

    The wait is on the pipe and on a pidfd of the process together, so an exit
    is seen at once, without polling (where pidfds are missing: polling, backing off).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    exit_fd = pidfd(proc.pid)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ, "output")
            if exit_fd is not None:
                sel.register(exit_fd, selectors.EVENT_READ, "exit")
            open_pipe, nap = True, 0.001
            while not has_exited(proc):
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


def drain(proc: subprocess.Popen[bytes], cap: OutputCap, ceiling: int) -> None:
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


def kill_tree(proc: subprocess.Popen[bytes], cgroup: Cgroup | None) -> None:
    """SIGKILL the command's process group and everything in the cgroup (daemons that setsid'ed too).

    Under bubblewrap, killing bwrap also takes down its PID namespace (--die-with-parent)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        cgroup.kill_all()
