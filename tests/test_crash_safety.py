"""Crash safety: SIGKILL at random moments, torn lines, Ctrl-C, and leftovers of dead runs.

The collect runs here are real `oec collect` subprocesses with scripted models
loaded from JSON files (``scripted:@file.json``), so the child sees them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SweRepo, _git

from oec.collect.records import Trajectory
from oec.collect.run_dir import TORN, RunDir, RunDirError
from oec.collect.schedules import UniformSwitch
from oec.collect.seeding import rollout_rng
from oec.env.leftovers import sweep

FIX = {"text": "Fix the operator.", "tool_calls": [{"name": "str_replace_editor", "arguments": {
    "command": "str_replace", "path": "calc/__init__.py", "old_str": "return a - b", "new_str": "return a + b"}}]}
SUBMIT = {"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}
STUDENT = {"replies": [{"text": "```bash\nls\n```", "delay_s": 0.1},
                       {"text": "```bash\ncat calc/__init__.py\n```", "delay_s": 0.1},
                       {"text": "```bash\ngrep -n add calc/__init__.py\n```", "delay_s": 0.1}],
           "final": {"text": "```bash\necho idle\n```", "delay_s": 0.1}}
SAMPLES, SEED, SWITCH = 12, 5, "uniform:0-4"


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _setup(swe_repo: SweRepo, tmp_path: Path, student: dict = STUDENT, rows: list[dict] | None = None):
    """Task file, script files and private work/temp dirs; returns (base argv, env)."""
    tasks = _write(tmp_path / "tasks.jsonl", "".join(json.dumps(r) + "\n" for r in rows or [swe_repo.row]))
    student_file = _write(tmp_path / "student.json", student)
    expert_file = _write(tmp_path / "expert.json", {"replies": [FIX, SUBMIT], "native_tools": True})
    work, tmp = tmp_path / "work", tmp_path / "tmpdir"
    work.mkdir()
    tmp.mkdir()
    argv = [sys.executable, "-c", "from oec.cli import main; main()", "collect", str(tasks),
            "--repos", str(swe_repo.repos_dir), "--student", f"scripted:@{student_file}",
            "--expert", f"scripted:@{expert_file}", "--switch", SWITCH, "--seed", str(SEED), "--max-calls", "6"]
    env = {**os.environ, "OEC_WORK_DIR": str(work), "TMPDIR": str(tmp), "COLUMNS": "120"}
    return argv, env


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines() if line.strip()]


def _key(records: list[dict]) -> list[tuple]:
    return sorted((r["id"], r["planned_switch"], r["switch_step"], r["exit_reason"],
                   bool(r["reward"] and r["reward"]["resolved"]), tuple(s["source"] for s in r["steps"]))
                  for r in records)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run(swe_repo, tmp_path: Path) -> None:
    argv, env = _setup(swe_repo, tmp_path)
    argv += ["--samples", str(SAMPLES), "--concurrency", "3"]
    reference = tmp_path / "reference"
    done = subprocess.run(argv + ["--out", str(reference)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = _key(_records(reference))
    assert len(expected) == SAMPLES and len({k[2] for k in expected}) > 1  # switch steps vary

    # kill after a random number (0-2) of further rollouts were written, plus a random delay: at any phase
    out, rng, progress, leftovers = tmp_path / "killed", random.Random(20240601), [0], []
    trajectories = out / "trajectories.jsonl"
    lines = lambda: trajectories.read_bytes().count(b"\n") if trajectories.exists() else 0  # noqa: E731
    for _ in range(12):
        proc = subprocess.Popen(argv + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if len(progress) <= 4 and SAMPLES - progress[-1] > 3:  # four kills, then let it finish
            target, deadline = progress[-1] + rng.randint(0, 2), time.monotonic() + 60
            while lines() < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                progress.append(lines())
                leftovers.append(len(list((tmp_path / "work").iterdir())))
                continue
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        break
    else:
        pytest.fail("the run never finished")
    kills = len(progress) - 1
    assert kills >= 3 and progress[-1] > 0 and any(leftovers), (progress, leftovers)  # killed mid-run
    records = _records(out)
    assert len({r["id"] for r in records}) == len(records) == SAMPLES
    assert _key(records) == expected
    assert list((tmp_path / "work").iterdir()) == []  # the killed runs' workspaces were swept on resume
    left = [(p.name, sorted(str(f.relative_to(p)) for f in p.rglob("*"))) for p in (tmp_path / "tmpdir").iterdir()
            if p.name.startswith("oec-sandbox-")]
    assert not left, (left, progress)


@pytest.mark.slow
def test_torn_last_line_is_set_aside_and_redone(swe_repo, tmp_path: Path) -> None:
    argv, env = _setup(swe_repo, tmp_path)
    argv += ["--samples", "3", "--concurrency", "3", "--out", str(tmp_path / "run")]
    assert subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode == 0
    trajectories = tmp_path / "run" / "trajectories.jsonl"
    expected = _key(_records(tmp_path / "run"))
    *whole, last = trajectories.read_text().splitlines(keepends=True)
    torn = last[: len(last) // 2]
    trajectories.write_text("".join(whole) + torn)  # as if killed halfway through writing the last line
    dead, live = tmp_path / "work" / f"oec-acme__calc-1-{_dead_pid()}-k1ll3d00", \
        tmp_path / "work" / f"oec-acme__calc-1-{os.getpid()}-st1llr0n"
    for workspace in (dead, live):
        (workspace / ".git").mkdir(parents=True)

    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 already done and skipped" in result.stdout
    assert "removed leftovers of killed runs: 1 workspace(s)" in result.stdout
    assert not dead.exists() and live.exists()  # a live run's workspace is never touched
    assert (tmp_path / "run" / TORN).read_text() == torn + "\n"
    assert _key(_records(tmp_path / "run")) == expected


def _trajectory(i: int) -> Trajectory:
    return Trajectory(id=f"t/oec/{i}", instance_id="t", strategy="oec", sample_index=i, run_seed=0, seed=i,
                      exit_reason="submitted")


def test_run_dir_sets_aside_garbage_and_duplicates_and_keeps_a_whole_unterminated_tail(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with run:
        for i in range(3):
            run.append(_trajectory(i))
    lines = run.trajectories.read_text().splitlines(keepends=True)
    # a duplicate of line 0, a garbage line, and a whole last record that lost its newline
    run.trajectories.write_text(lines[0] + lines[1] + lines[0] + "\x00\x00garbage\n" + lines[2].rstrip("\n"))
    with run:
        assert run.done_ids() == {"t/oec/0", "t/oec/1", "t/oec/2"}
    assert run.trajectories.read_text() == "".join(lines)
    assert run.torn.read_text() == lines[0] + "\x00\x00garbage\n"
    with run:  # nothing left to repair: the file is not touched again
        assert run.torn.read_text().count("\n") == 2


def test_run_dir_admits_one_writer(tmp_path: Path) -> None:
    first = RunDir(tmp_path / "run")
    first.open()
    with pytest.raises(RunDirError, match=f"another oec process \\(pid {os.getpid()}\\)"):
        RunDir(tmp_path / "run").open()
    first.close()
    with RunDir(tmp_path / "run"):
        pass


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_sweep_removes_only_dead_runs_leftovers(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    work, tmp, cgroups = tmp_path / "work", tmp_path / "tmp", tmp_path / "cgroups"
    for name in (f"oec-acme__calc-1-{dead}-ab_cd123", f"grade-x-{live}-ab_cd123", f"oec-y-{dead}-zzzzzzzz"):
        (work / name / ".git").mkdir(parents=True)
    (work / f"oec-y-{dead}-zzzzzzzz" / ".git").rmdir()  # empty: a workspace killed right after mkdtemp
    (work / f"photos-{dead}-trip").mkdir()  # not a workspace name (8 random chars)
    (work / f"notes-{dead}-abcdefgh").mkdir()
    (work / f"notes-{dead}-abcdefgh" / "todo.txt").write_text("mine")  # the name fits, the content does not
    for name in (f"oec-sandbox-{dead}-q1w2e3r4", f"oec-sandbox-{live}-q1w2e3r4", "oec-sandbox-oldstyle"):
        (tmp / name).mkdir(parents=True)
    for name in (f"oec-sandbox-{dead}-0123abcd", f"oec-sandbox-{live}-0123abcd"):
        (cgroups / name).mkdir(parents=True)

    newcomer = subprocess.Popen(["sleep", "30"])  # a process that got a dead run's pid after it died
    reused = work / f"oec-z-{newcomer.pid}-r3us3d00"
    (reused / ".git").mkdir(parents=True)
    os.utime(reused, (time.time() - 3600, time.time() - 3600))  # made an hour before that process started

    try:
        report = sweep([work], temp_dir=tmp, cgroup_roots=[cgroups])
    finally:
        newcomer.kill()
        newcomer.wait()
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [f"grade-x-{live}-ab_cd123", f"photos-{dead}-trip", f"notes-{dead}-abcdefgh"])
    assert sorted(p.name for p in tmp.iterdir()) == sorted([f"oec-sandbox-{live}-q1w2e3r4", "oec-sandbox-oldstyle"])
    assert [p.name for p in cgroups.iterdir()] == [f"oec-sandbox-{live}-0123abcd"]
    assert (len(report.workspaces), len(report.sandbox_dirs), len(report.cgroups)) == (3, 1, 1)
    sweep([work], temp_dir=tmp, cgroup_roots=[cgroups], also_pids={live})  # a run abandoning its own
    assert f"grade-x-{live}-ab_cd123" not in {p.name for p in work.iterdir()}


@pytest.mark.skipif(not os.access("/sys/fs/cgroup/pids", os.W_OK), reason="no writable cgroup v1 pids hierarchy")
def test_sweep_kills_and_removes_a_dead_runs_cgroup(tmp_path: Path) -> None:
    from oec.env.leftovers import cgroup_parents

    parent = next(p for p in cgroup_parents() if "pids" in p.parts)
    group = parent / f"oec-sandbox-{_dead_pid()}-feedf00d"
    group.mkdir()
    stray = subprocess.Popen(["sleep", "60"])
    (group / "cgroup.procs").write_text(str(stray.pid))
    try:
        report = sweep([], temp_dir=tmp_path)
        assert group in report.cgroups and not group.exists()
        assert stray.wait(timeout=5) == -signal.SIGKILL
    finally:
        stray.kill()
        if group.exists():
            group.rmdir()


def _second_task(swe_repo: SweRepo) -> dict:
    """acme__calc-2: the same bug, at a commit that adds a `marker` file (so a command can tell the tasks apart)."""
    repo = swe_repo.repos_dir / "acme__calc"
    head = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "marker").write_text("2\n")
    _git(repo, "add", "marker")
    _git(repo, "commit", "-qm", "marker")
    commit = _git(repo, "rev-parse", "HEAD").strip()
    _git(repo, "checkout", "-q", head)
    return {**swe_repo.row, "instance_id": "acme__calc-2", "base_commit": commit}


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_sigint_writes_what_finished_abandons_the_rest_and_exits_130_promptly(swe_repo, tmp_path: Path) -> None:
    # student: on acme__calc-2 it sleeps in the sandbox; on acme__calc-1 its next call holds a thread for a minute
    student = {"replies": [{"text": "```bash\ntest -f marker && sleep 9871 || echo no marker\n```"},
                           {"text": "```bash\nls\n```", "block_s": 60}], "final": "```bash\nls\n```"}
    rows = [swe_repo.row, _second_task(swe_repo)]
    argv, env = _setup(swe_repo, tmp_path, student=student, rows=rows)
    switch = UniformSwitch(0, 4)
    planned = {(r["instance_id"], i): switch.plan(rollout_rng(SEED, r["instance_id"], "oec", i))
               for r in rows for i in range(3)}
    # the expert fixes and submits at once: rollouts that reach it before the student's stalling call finish
    quick = {f"{iid}/oec/{i}" for (iid, i), k in planned.items() if k == 0 or (iid == "acme__calc-1" and k == 1)}
    stuck = {key for key in planned if f"{key[0]}/oec/{key[1]}" not in quick}
    assert quick and {iid for iid, _ in stuck} == {"acme__calc-1", "acme__calc-2"}
    out = tmp_path / "run"
    proc = subprocess.Popen(argv + ["--samples", "3", "--concurrency", "6", "--command-timeout", "300",
                                    "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    trajectories, deadline = out / "trajectories.jsonl", time.monotonic() + 60
    while time.monotonic() < deadline and not (
            trajectories.exists() and len(_records(out)) == len(quick) and _processes_with("sleep 9871")):
        time.sleep(0.1)
    time.sleep(0.5)  # the acme__calc-1 rollouts reach their blocking call
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - sent

    assert proc.returncode == 130, stderr
    assert took < 10, f"took {took:.1f}s to exit"
    assert {r["id"] for r in _records(out)} == quick
    assert "interrupted" in stderr and "run the same command again to resume" in stderr
    time.sleep(0.2)
    assert _processes_with("sleep 9871") == []
    assert list((tmp_path / "work").iterdir()) == []
    assert not [p for p in (tmp_path / "tmpdir").iterdir() if p.name.startswith("oec-sandbox-")]
    assert not list(Path("/sys/fs/cgroup/pids").glob(f"oec-sandbox-{proc.pid}-*"))


@pytest.mark.parametrize("drain", [True, False])
def test_stop_starts_nothing_new_and_drains_or_abandons_what_is_in_flight(swe_repo, tmp_path: Path,
                                                                           drain: bool) -> None:
    import asyncio

    from oec.collect.executors import LocalExecutor
    from oec.collect.interrupt import Interrupted, StopSignal
    from oec.collect.rollout import RolloutConfig
    from oec.collect.runner import collect
    from oec.env.repos import RepoIndex
    from oec.models.registry import make_provider
    from oec.models.scripted import register_script

    register_script("cs-slow-student", [{"text": "```bash\nls\n```", "delay_s": 0.6}], final="```bash\nls\n```")
    register_script("cs-expert", [FIX, SUBMIT], native_tools=True)
    config = RolloutConfig(strategy="oec", student=make_provider("scripted:cs-slow-student"),
                           expert=make_provider("scripted:cs-expert"), switch=UniformSwitch(1, 1),
                           repos=RepoIndex([swe_repo.repos_dir]), work_root=tmp_path / "work", grade=False)

    async def main():
        stop = StopSignal(drain=drain)
        asyncio.get_running_loop().call_later(0.3, stop.request)  # a Ctrl-C while two rollouts are in flight
        return await collect([swe_repo.task], [config], RunDir(tmp_path / "run"), samples=4,
                             executor=LocalExecutor(2), stop=stop)

    with pytest.raises(Interrupted) as caught:
        asyncio.run(main())
    summary = caught.value.summary
    assert len(summary.finished) == (2 if drain else 0) and summary.unfinished == (2 if drain else 4)
    assert all(t.exit_reason == "submitted" for t in summary.finished)
    assert len(RunDir(tmp_path / "run").done_ids()) == len(summary.finished)
    assert list((tmp_path / "work").iterdir()) == []


def test_a_workspace_killed_while_being_removed_is_still_swept(swe_repo, tmp_path: Path, monkeypatch) -> None:
    """Kill `Workspace.close` after each of its deletions in turn: what is left is always swept."""
    from oec.env.workspace import Workspace

    real_unlink, real_rmdir = os.unlink, os.rmdir
    for kill_after in range(1, 200):
        work = tmp_path / f"work-{kill_after}"
        ws = Workspace.create(swe_repo.repos_dir / "acme__calc", swe_repo.row["base_commit"], root=work, label="oec-t")
        (ws.path / "build").mkdir()
        (ws.path / "build" / "out.txt").write_text("made by the model")
        dead_name = ws.path.with_name(ws.path.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
        ws.path.rename(dead_name)
        ws.path = dead_name
        steps = [0]

        def counted(real):
            def step(*args, **kwargs):
                steps[0] += 1
                if steps[0] > kill_after:
                    raise KeyboardInterrupt  # stands for SIGKILL: nothing after this runs
                return real(*args, **kwargs)
            return step

        monkeypatch.setattr(os, "unlink", counted(real_unlink))  # every file and folder removal goes through these
        monkeypatch.setattr(os, "rmdir", counted(real_rmdir))
        try:
            ws.close()
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.undo()
        if finished:
            assert not dead_name.exists()
            break
        assert dead_name.exists()
        report = sweep([work], temp_dir=tmp_path / "no-tmp", cgroup_roots=[])
        assert report.workspaces == [dead_name] and not dead_name.exists(), (kill_after, report)
    else:
        pytest.fail("close never finished")
