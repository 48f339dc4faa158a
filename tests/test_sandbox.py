"""The sandbox: what a caller sees (CommandResult) and what really happened (files, processes, sockets)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from oec.env import cgroups as cgroups_mod
from oec.env import sandbox as sandbox_mod
from oec.env.sandbox import (
    CommandResult,
    SandboxLimits,
    Sandbox,
    SandboxError,
    SandboxWarning,
    bwrap_available,
)

HAS_BWRAP = bwrap_available()
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap (bwrap) is not installed or not usable here")
ISOLATIONS = [pytest.param("bwrap", marks=needs_bwrap), "none"]

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace under /tmp, so bwrap's fresh /tmp must not hide it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def marker() -> str:
    """A unique value put in the sandbox's environment: every process it starts inherits it."""
    return f"oec-test-{uuid.uuid4().hex}"


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (zombies have none, so they don't count)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if marker.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


def _assert_no_leftovers(marker: str) -> None:
    deadline = time.monotonic() + 2.0
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"processes left behind: {left}"


def _make(workspace: Path, isolation: str, marker: str = "", **limits: float) -> Sandbox:
    return Sandbox(workspace, limits=SandboxLimits(**limits), env={"OEC_TEST_MARK": marker} if marker else None,
                   isolation=isolation)  # type: ignore[arg-type]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_output_exit_code_and_cwd(workspace: Path, isolation: str) -> None:
    with _make(workspace, isolation) as sb:
        assert sb.isolated is (isolation == "bwrap")
        result = sb.run("echo hello; echo oops >&2; pwd; exit 7")
    assert isinstance(result, CommandResult)
    assert result.exit_code == 7
    assert result.output == f"hello\noops\n{workspace}\n"
    assert (result.truncated, result.timed_out, result.killed_reason) == (False, False, None)
    assert result.command.startswith("echo hello") and result.duration_s >= 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_python_is_the_interpreter_oec_runs_under(workspace: Path, isolation: str) -> None:
    with _make(workspace, isolation) as sb:
        result = sb.run("python -c 'import sys; print(sys.executable)' && python -m pytest --version")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == sys.executable
    assert "pytest" in result.output


@pytest.fixture
def outside_dirs(tmp_path: Path) -> Iterator[list[Path]]:
    """Writable directories outside the workspace: one beside it (under /tmp), one elsewhere."""
    beside = tmp_path / "outside"
    beside.mkdir()
    elsewhere = Path(tempfile.mkdtemp(prefix="oec-sandbox-test-", dir="/var/tmp"))
    yield [beside, elsewhere]
    shutil.rmtree(elsewhere, ignore_errors=True)


@needs_bwrap
def test_writes_only_inside_workspace(workspace: Path, outside_dirs: list[Path]) -> None:
    targets = [d / "escape.txt" for d in outside_dirs] + [Path(f"/etc/oec-sandbox-test-{uuid.uuid4().hex}")]
    with _make(workspace, "bwrap") as sb:
        result = sb.run("echo inside > note.txt; " + "; ".join(f"echo x > {t}" for t in targets) + "; echo done")
    assert result.exit_code == 0 and result.output.endswith("done\n")
    assert result.output.count("bash: line 1:") == len(targets), result.output  # each write refused
    assert "Read-only file system" in result.output
    assert not any(t.exists() for t in targets)
    assert (workspace / "note.txt").read_text() == "inside\n"


@needs_bwrap
def test_tmp_is_private_and_lasts_for_the_sandbox(workspace: Path) -> None:
    name = f"/tmp/oec-scratch-{uuid.uuid4().hex}"
    with _make(workspace, "bwrap") as sb:
        wrote = sb.run(f"echo scratch > {name} && echo ok")
        assert not Path(name).exists()  # not the machine's /tmp
        assert sb.run(f"cat {name}").output == "scratch\n"  # the next command still sees it
    with _make(workspace, "bwrap") as other:
        assert other.run(f"cat {name}").exit_code != 0  # another sandbox does not
    assert wrote.output == "ok\n"


@needs_bwrap
def test_network_is_cut(workspace: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    probe = (
        "import socket\n"
        f"for addr in [('1.1.1.1', 80), ('127.0.0.1', {port})]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=3).close(); print('connected', addr)\n"
        "    except OSError as e:\n"
        "        print('failed', addr, type(e).__name__)\n"
    )
    (workspace / "probe.py").write_text(probe)
    try:
        with _make(workspace, "bwrap") as sb:
            result = sb.run("python probe.py")
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing reached the test's server
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert "connected" not in result.output
    assert result.output.count("failed") == 2


FORK_BOMBS = {
    "bash": ":(){ :|:& };:",
    "python": "python -c 'import os\nwhile True: os.fork()'",
    "python-retrying": "python -c 'import os, time\nwhile True:\n try: os.fork()\n except OSError: time.sleep(0.01)'",
}


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("bomb", FORK_BOMBS.values(), ids=FORK_BOMBS.keys())
def test_fork_bomb_is_contained(workspace: Path, isolation: str, bomb: str, marker: str) -> None:
    with _make(workspace, isolation, marker, timeout_s=2, max_processes=64) as sb:
        if not sb.isolated and sb._cgroup is None:
            pytest.skip("no pids cgroup and no bwrap: a fork bomb cannot be contained here")
        start = time.monotonic()
        result = sb.run(bomb)
        assert time.monotonic() - start < 6
        if sb._cgroup is not None and (peak := sb._cgroup.dirs[0] / "pids.peak").exists():
            assert int(peak.read_text()) <= 64
        _assert_no_leftovers(marker)
        follow_up = sb.run("echo still-alive")
    assert result.killed_reason in (None, "timeout")
    assert follow_up.output == "still-alive\n" and follow_up.duration_s < 2


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_process_limit(workspace: Path, isolation: str, marker: str) -> None:
    spawn = (
        "python -c 'import subprocess\nps = []\n"
        "try:\n for _ in range(100): ps.append(subprocess.Popen([\"sleep\", \"30\"]))\n"
        "except OSError as e: print(\"refused\", type(e).__name__)\n"
        "print(\"spawned\", len(ps))\nfor p in ps: p.kill()'"
    )
    with _make(workspace, isolation, marker, timeout_s=20, max_processes=20) as sb:
        if sb._cgroup is None:
            pytest.skip("no writable pids cgroup: max_processes is not enforced for root")
        result = sb.run(spawn)
    spawned = int(result.output.split("spawned")[1].split()[0])
    assert "refused" in result.output and spawned < 20, result.output
    _assert_no_leftovers(marker)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_endless_output_is_cut_and_killed(workspace: Path, isolation: str, marker: str) -> None:
    with _make(workspace, isolation, marker, timeout_s=30) as sb:
        result = sb.run("yes", output_bytes=10_000)
    assert result.duration_s < 5
    assert (result.truncated, result.killed_reason, result.exit_code) == (True, "output_limit", None)
    assert not result.timed_out
    assert "bytes truncated ...]" in result.output and "command killed" in result.output
    assert result.output.startswith("y\ny\n") and len(result.output) < 10_000 + 300
    _assert_no_leftovers(marker)


def test_long_output_keeps_head_and_tail(workspace: Path) -> None:
    with _make(workspace, "auto") as sb:
        result = sb.run("seq 1 100000", output_bytes=1000)
    assert (result.exit_code, result.truncated, result.killed_reason) == (0, True, None)
    head, _, tail = result.output.partition("\n[... ")
    assert head.startswith("1\n2\n3\n") and tail.endswith("\n99999\n100000\n")
    dropped = int(tail.split()[0])
    assert dropped == len("".join(f"{i}\n" for i in range(1, 100001))) - 1000
    assert len(result.output) < 1100


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_timeout_kills_the_whole_tree(workspace: Path, isolation: str, marker: str) -> None:
    with _make(workspace, isolation, marker) as sb:
        start = time.monotonic()
        result = sb.run("sleep 300 & echo started; sleep 30; wait", timeout_s=1)
        elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 3
    assert (result.timed_out, result.killed_reason, result.exit_code) == (True, "timeout", None)
    assert result.output.startswith("started\n") and "timed out after 1 s" in result.output
    _assert_no_leftovers(marker)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_detached_daemons_are_killed(workspace: Path, isolation: str, marker: str) -> None:
    """`setsid` leaves the process group; the PID namespace or the cgroup still catches it."""
    with _make(workspace, isolation, marker) as sb:
        if not sb.isolated and sb._cgroup is None:
            pytest.skip("neither bwrap nor a pids cgroup: a setsid'ed daemon escapes")
        result = sb.run("setsid sleep 300 > /dev/null 2>&1 & echo ok")
    assert result.exit_code == 0 and result.output == "ok\n"
    _assert_no_leftovers(marker)


#: maps 8 GiB of address space but writes only 1 MiB of it (a JVM's heap reservation, Go's arenas)
_RESERVE_8G = ("python -c 'import mmap; m = mmap.mmap(-1, 8 << 30); m[:1 << 20] = bytes(1 << 20); "
               "print(\"reserved\")'")
#: writes 1 GiB, 1 MiB at a time
_TOUCH_1G = ("python -c 'import mmap; m = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 1 << 20): "
             "m[i:i + (1 << 20)] = bytes(1 << 20)\nprint(\"touched\")'")


def _needs_memory_cgroup(sb: Sandbox) -> None:
    if not sb.memory_cgroup:
        pytest.skip("no writable memory cgroup here")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_memory_limit(workspace: Path, isolation: str) -> None:
    with _make(workspace, isolation, memory_mb=512) as sb:
        result = sb.run("python -c 'b = bytearray(8 << 30); print(\"allocated\")'")
    assert result.exit_code not in (0, None) and "allocated" not in result.output
    # the cgroup's OOM killer (SIGKILL) where there is one, else ulimit -v's MemoryError
    assert result.exit_code == 137 if sb.memory_cgroup else "MemoryError" in result.output


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_with_a_memory_cgroup_address_space_is_free_but_memory_is_not(workspace: Path, isolation: str) -> None:
    """JVMs, Go and some numpy/torch imports reserve more than they use: only what is touched counts."""
    with _make(workspace, isolation, memory_mb=256) as sb:
        _needs_memory_cgroup(sb)
        assert sb.run("ulimit -v").output.strip() == "unlimited"
        reserved = sb.run(_RESERVE_8G)
        touched = sb.run(_TOUCH_1G)
    assert reserved.exit_code == 0 and reserved.output == "reserved\n", reserved.output
    assert touched.exit_code == 137 and "touched" not in touched.output, touched.output  # the OOM killer


def test_memory_cgroup_kills_without_ulimit(workspace: Path) -> None:
    """The cgroup limit holds on its own (it counts resident memory, which `ulimit -v` does not)."""
    with _make(workspace, "auto", memory_mb=256) as sb:
        _needs_memory_cgroup(sb)
        result = sb.run("python -c 'x = [b\"x\" * (64 << 20) for _ in range(16)]; print(\"allocated\")'")
    assert result.exit_code == 137, result.output  # SIGKILLed by the OOM killer
    assert "allocated" not in result.output


def test_without_a_memory_cgroup_ulimit_v_stands_in_and_says_so(workspace: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups_mod, "_set_memory", lambda *args: False)  # a cgroup without a memory controller
    monkeypatch.setattr(sandbox_mod, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _make(workspace, "auto", memory_mb=512) as sb:
            limited = sb.memory_cgroup
            ulimit = sb.run("ulimit -v").output.strip()
            reserved = sb.run(_RESERVE_8G)
    assert not limited and ulimit == str(512 * 1024)
    assert reserved.exit_code != 0 and "reserved" not in reserved.output  # the fallback's known cost
    assert any("no cgroup memory limit" in str(w.message) for w in caught)


def test_isolation_none_warns_once(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with Sandbox(workspace, isolation="none") as sb:
                assert not sb.isolated
                results = [sb.run("echo hi"), sb.run("echo again")]
    assert [r.output for r in results] == ["hi\n", "again\n"]
    off = [w for w in caught if issubclass(w.category, SandboxWarning) and "isolation is OFF" in str(w.message)]
    assert len(off) == 1


def test_auto_falls_back_and_bwrap_demands_it(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "bwrap_available", lambda: False)
    monkeypatch.setattr(sandbox_mod, "_warned", set())
    with pytest.raises(SandboxError, match="bubblewrap"):
        Sandbox(workspace, isolation="bwrap")
    with pytest.warns(SandboxWarning, match="isolation is OFF"):
        sb = Sandbox(workspace, isolation="auto")
    with sb:
        assert not sb.isolated and sb.run("echo ok").output == "ok\n"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_secrets_do_not_leak(workspace: Path, isolation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-456")
    with Sandbox(workspace, isolation=isolation, env={"FOO": "bar"}) as sb:  # type: ignore[arg-type]
        result = sb.run("env; echo key=${OPENAI_API_KEY:-unset}")
    assert "sk-test-secret-123" not in result.output and "sk-ant-secret-456" not in result.output
    assert "key=unset" in result.output and "FOO=bar" in result.output
    assert "LANG=C.UTF-8" in result.output and "PYTHONDONTWRITEBYTECODE=1" in result.output


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_close_is_idempotent_and_releases_cgroups(workspace: Path, isolation: str) -> None:
    sb = _make(workspace, isolation)
    dirs = list(sb._cgroup.dirs) if sb._cgroup else []
    assert all(d.is_dir() for d in dirs)
    sb.run("true")
    sb.close()
    sb.close()
    assert not any(d.exists() for d in dirs)
    with pytest.raises(SandboxError, match="closed"):
        sb.run("true")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_close_aborts_a_running_command(workspace: Path, isolation: str, marker: str) -> None:
    sb = _make(workspace, isolation, marker)
    results: list[CommandResult] = []
    worker = threading.Thread(target=lambda: results.append(sb.run("sleep 60")))
    worker.start()
    time.sleep(0.5)
    start = time.monotonic()
    sb.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and time.monotonic() - start < 3
    assert results[0].exit_code == 137  # SIGKILL
    _assert_no_leftovers(marker)


def test_bad_workspace_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not a directory"):
        Sandbox(tmp_path / "missing")


def test_without_cgroups_warns_that_processes_are_unbounded(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups_mod.Cgroup, "create", classmethod(lambda cls, name, limits: None))
    monkeypatch.setattr(sandbox_mod, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Sandbox(workspace, limits=SandboxLimits(max_processes=50)) as sb:
            result = sb.run("ulimit -u; echo ok")
    assert result.output == "50\nok\n"  # the fallback, which binds only non-root users
    nproc = [w for w in caught if "max_processes is NOT enforced" in str(w.message)]
    assert len(nproc) == (1 if os.geteuid() == 0 else 0)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_commands_run_inside_the_sandbox_cgroup(workspace: Path, isolation: str, marker: str) -> None:
    """Every process of a command (bwrap's included) is in the sandbox's cgroup, where its limits bind."""
    with _make(workspace, isolation, marker) as sb:
        if sb._cgroup is None:
            pytest.skip("no writable cgroup here")
        worker = threading.Thread(target=sb.run, args=("touch started; sleep 30",))
        worker.start()
        deadline = time.monotonic() + 10.0
        while not (workspace / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        mine, in_group = set(_processes_with(marker)), sb._cgroup.pids()  # the command runs: all are in
        sb.close()  # aborts the sleep
        worker.join()
    assert mine and mine <= in_group, (mine, in_group)


def test_a_lost_cgroup_refuses_to_run_the_command(workspace: Path) -> None:
    """If the cgroup vanished (removed by hand, say), the command must not run unconfined."""
    with _make(workspace, "none") as sb:
        if sb._cgroup is None:
            pytest.skip("no writable cgroup here")
        for d in sb._cgroup.dirs:
            d.rmdir()
        with pytest.raises(SandboxError, match="cannot join the cgroup"):
            sb.run("touch ran")
    assert not (workspace / "ran").exists()


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_trusted_runs_keep_stdout_whole_and_stderr_apart(workspace: Path, isolation: str) -> None:
    """oec's own commands (a rollout's diff): stdout must never be cut or mixed with warnings."""
    with _make(workspace, isolation) as sb:
        code, out, err = sb.run_trusted("head -c 300000 /dev/zero | tr '\\0' x; echo; echo warning >&2; exit 3")
        assert code == 3 and len(out) == 300001 and set(out.strip()) == {"x"} and err == "warning\n"
        with pytest.raises(SandboxError, match="printed more than 1000 bytes"):
            sb.run_trusted("head -c 5000 /dev/zero", max_output_bytes=1000)
        staged = sb.write_scratch("oec-in.txt", b"given")
        assert sb.run(f"cat {staged} > {sb.scratch_inside}/oec-out.txt").exit_code == 0
        assert sb.read_scratch("oec-out.txt", limit=100) == b"given"
        assert sb.run(f"ln -s /etc/hostname {sb.scratch_inside}/oec-link").exit_code == 0
        assert sb.read_scratch("oec-link", limit=100) == b""  # never read through a link a command made
        with pytest.raises(ValueError):
            sb.read_scratch("../escape", limit=1)


@needs_bwrap
def test_the_sandbox_etc_holds_only_what_programs_read(workspace: Path) -> None:
    with _make(workspace, "bwrap") as sb:
        listing = sb.run("ls -A /etc").output.split()
        root = sb.run("ls -A /").output.split()
    assert {"passwd", "hosts", "ld.so.cache"} <= set(listing)
    assert not {"shadow", "gshadow", "sudoers", "ssh", "gitconfig", "machine-id"} & set(listing)
    assert "run" not in root and "home" not in root and "var" in root  # /var holds only the /var/tmp link
