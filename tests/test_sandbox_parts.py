"""The sandbox's parts, each alone: output cap, launch command, cgroup (on a fake hierarchy), process control.

tests/test_sandbox.py checks the assembled sandbox on this machine's real
cgroups and bubblewrap; these pin each part's own behaviour where a machine
cannot show it (cgroup v2 here when the host has v1, a failed join).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest

from oec.env import cgroups as cgroups_mod
from oec.env import sandbox as sandbox_mod
from oec.env.cgroups import JOIN_FAILED, JOIN_MARKER, Cgroup, join_failed
from oec.env.launch import command_env, launcher, shell_limits, visible_roots
from oec.env.limits import SandboxLimits
from oec.env.output import MIN_CEILING, OutputCap, command_result, output_ceiling
from oec.env.process import Runner
from oec.env.sandbox import Sandbox, SandboxError, SandboxWarning

# --- output capture ---------------------------------------------------------------------------------------------


def test_output_cap_keeps_everything_within_the_limit() -> None:
    cap = OutputCap(10)
    for chunk in (b"abc", b"defg", b"hij"):
        cap.add(chunk)
    assert (cap.text(), cap.dropped, cap.total) == ("abcdefghij", 0, 10)


def test_output_cap_keeps_head_and_tail_and_says_how_much_is_gone() -> None:
    cap = OutputCap(6)
    for chunk in (b"12", b"3456789", b"ABCDEF", b"xyz"):
        cap.add(chunk)
    assert bytes(cap.head) == b"123" and bytes(cap.tail) == b"xyz"
    assert cap.total == 18 and cap.dropped == 12
    assert cap.text() == "123\n[... 12 bytes truncated ...]\nxyz"


def test_output_cap_of_zero_keeps_nothing_but_counts() -> None:
    cap = OutputCap(0)
    cap.add(b"hello")
    assert cap.text() == "\n[... 5 bytes truncated ...]\n" and cap.dropped == 5


def test_output_ceiling_is_a_multiple_of_the_cap_but_never_below_the_floor() -> None:
    assert output_ceiling(OutputCap(100)) == MIN_CEILING
    assert output_ceiling(OutputCap(1 << 20)) == 20 << 20


def test_command_result_notes_why_the_sandbox_killed_a_command() -> None:
    cap = OutputCap(100)
    cap.add(b"partial")
    timed_out = command_result("sleep 9", cap, "timeout", 137, 1.5, 99, 1.6)
    assert timed_out.exit_code is None and timed_out.timed_out and timed_out.killed_reason == "timeout"
    assert timed_out.output == "partial\n[... command timed out after 1.5 s; its processes were killed ...]"
    flooded = command_result("yes", cap, "output_limit", 137, 1.5, 99, 0.1)
    assert flooded.exit_code is None and not flooded.timed_out
    assert flooded.output.endswith("[... command killed: it printed more than 99 bytes ...]")
    finished = command_result("true", cap, None, 3, 1.5, 99, 0.1)
    assert (finished.exit_code, finished.output, finished.truncated, finished.killed_reason) == (3, "partial", False,
                                                                                                  None)


# --- the launch command -----------------------------------------------------------------------------------------


def _fake_group(tmp: Path, *, memory_limited: bool) -> Cgroup:
    group = tmp / "group"
    group.mkdir()
    (group / "cgroup.procs").write_text("")
    return Cgroup([group], memory_limited=memory_limited)


def test_shell_limits_only_fall_back_to_ulimits_for_what_the_cgroup_does_not_bound(tmp_path: Path) -> None:
    limits = SandboxLimits(memory_mb=512, max_processes=50)
    assert shell_limits(limits, None) == ["ulimit -v 524288", "ulimit -c 0", "ulimit -u 50"]
    assert shell_limits(limits, _fake_group(tmp_path, memory_limited=False)) == ["ulimit -v 524288", "ulimit -c 0"]
    (tmp_path / "group").rename(tmp_path / "old")
    assert shell_limits(limits, _fake_group(tmp_path, memory_limited=True)) == ["ulimit -c 0"]


def test_launcher_without_a_cgroup_is_bash_setting_the_ulimits() -> None:
    argv = launcher(SandboxLimits(memory_mb=512, max_processes=50), None)
    assert argv[0] == "bash" and argv[-2:] == ["oec-sandbox", "--"]
    out = subprocess.run([*argv, "sh", "-c", "ulimit -v; ulimit -c"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["524288", "0"]


def test_launcher_with_a_cgroup_joins_it_then_runs_the_command(tmp_path: Path) -> None:
    group = _fake_group(tmp_path, memory_limited=True)
    argv = launcher(SandboxLimits(), group)
    assert argv[-2:] == [*group.procs_files, "--"]
    out = subprocess.run([*argv, "sh", "-c", "echo $$; ulimit -v"], capture_output=True, text=True, check=True)
    pid, ulimit_v = out.stdout.split()
    assert group.pids() == {int(pid)}  # exec keeps the pid: the command itself is the process that joined
    assert ulimit_v == "unlimited"     # the cgroup bounds memory: no address-space cap


def test_launcher_refuses_to_run_the_command_when_it_cannot_join(tmp_path: Path) -> None:
    gone = Cgroup([tmp_path / "removed"])
    argv = [*launcher(SandboxLimits(), gone), "sh", "-c", "echo ran"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert out.returncode == JOIN_FAILED and "ran" not in out.stdout
    assert out.stderr.startswith(JOIN_MARKER) and join_failed(out.returncode, out.stderr)
    assert not join_failed(JOIN_FAILED, "a command that exits 125 by itself")


def test_command_env_holds_nothing_of_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    env = command_env([Path("/opt/py/bin")], home="/tmp")
    assert "OPENAI_API_KEY" not in env and env["HOME"] == "/tmp"
    path = env["PATH"].split(os.pathsep)
    assert path[0] == "/opt/py/bin" and path[1] == str(Path(sys.executable).parent)


def test_visible_roots_end_with_what_the_caller_shows(tmp_path: Path) -> None:
    roots = visible_roots([], [tmp_path])
    assert roots[-1] == tmp_path and len(roots) > 1  # the interpreter's installation comes first


# --- cgroups, on a fake hierarchy -------------------------------------------------------------------------------


def test_cgroup_v2_gets_pids_and_memory_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids memory\n")
    monkeypatch.setattr(cgroups_mod, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroups_mod, "own_cgroups", lambda: {"": "/"})
    group = Cgroup.create("g", SandboxLimits(memory_mb=512, max_processes=50))
    assert group is not None and group.dirs == [tmp_path / "g"] and group.memory_limited
    assert (tmp_path / "g" / "pids.max").read_text() == "50"
    assert (tmp_path / "g" / "memory.max").read_text() == str(512 << 20)
    assert (tmp_path / "g" / "memory.swap.max").read_text() == "0"


def test_cgroup_v1_makes_one_group_per_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for controller in ("pids", "memory"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    monkeypatch.setattr(cgroups_mod, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroups_mod, "own_cgroups", lambda: {"pids": "/", "memory": "/not-visible"})
    group = Cgroup.create("g", SandboxLimits(memory_mb=512, max_processes=50))
    assert group is not None and group.memory_limited
    assert group.dirs == [tmp_path / "pids" / "g", tmp_path / "memory" / "g"]  # an unseen own group: the root
    assert (tmp_path / "pids" / "g" / "pids.max").read_text() == "50"
    assert (tmp_path / "memory" / "g" / "memory.memsw.limit_in_bytes").read_text() == str(512 << 20)


def test_no_pids_controller_means_no_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups_mod, "CGROUP_ROOT", tmp_path)  # neither v2 nor a v1 pids hierarchy
    assert Cgroup.create("g", SandboxLimits()) is None


def test_an_empty_cgroup_is_killed_at_once_and_removed(tmp_path: Path) -> None:
    group = Cgroup([tmp_path / "g"])
    (tmp_path / "g").mkdir()
    assert group.pids() == set() and group.kill_all(timeout_s=0)
    group.remove()
    assert not (tmp_path / "g").exists()


# --- process control --------------------------------------------------------------------------------------------


def _run(argv: list[str], *, timeout: float = 10.0, limit: int = 1000, ceiling: int = 10_000,
         runner: Runner | None = None) -> tuple[str | None, int, OutputCap]:
    cap = OutputCap(limit)
    reason, code = (runner or Runner(None)).run(argv, cwd=Path.cwd(), env={"PATH": "/usr/bin:/bin"}, cap=cap,
                                                deadline=time.monotonic() + timeout, ceiling=ceiling)
    return reason, code, cap


def test_runner_returns_the_exit_code_and_the_merged_output() -> None:
    reason, code, cap = _run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (reason, code) == (None, 3) and sorted(cap.text().split()) == ["err", "out"]


def test_runner_kills_at_the_deadline_with_what_the_command_started() -> None:
    start = time.monotonic()
    reason, code, _ = _run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.3)
    assert reason == "timeout" and code == -9 and time.monotonic() - start < 5


def test_runner_kills_an_endless_printer_past_the_ceiling() -> None:
    reason, _, cap = _run(["yes"], limit=100, ceiling=50_000)
    assert reason == "output_limit" and 50_000 < cap.total and len(cap.head) + len(cap.tail) == 100


def test_kill_running_stops_a_command_from_another_thread() -> None:
    runner = Runner(None)
    threading.Timer(0.3, runner.kill_running).start()
    start = time.monotonic()
    reason, code, _ = _run(["sleep", "30"], runner=runner)
    assert reason is None and code == -9 and time.monotonic() - start < 5


# --- the sandbox's two construction steps ----------------------------------------------------------------------


def test_a_bad_argument_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    def ours() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob(f"oec-sandbox-{os.getpid()}-*")}

    before = ours()
    with pytest.raises(SandboxError):
        Sandbox(tmp_path, isolation="nope")  # type: ignore[arg-type]
    assert ours() == before


def test_warnings_name_the_code_that_made_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "_warned", set())
    monkeypatch.setattr(Cgroup, "create", classmethod(lambda cls, name, limits: None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Sandbox(tmp_path, isolation="none").close()
    ours = [w for w in caught if issubclass(w.category, SandboxWarning)]
    assert len(ours) >= 2 and {w.filename for w in ours} == {__file__}  # isolation, memory (and nproc as root)
