"""The episode loop and schedules with scripted models: who acts when, and what each model sees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.collect.episode import EpisodeLimits
from oec.collect.rollout import RolloutConfig, run_rollout
from oec.collect.run_dir import RunDir
from oec.collect.runner import collect
from oec.collect.schedules import FixedSwitch, UniformSwitch, parse_switch
from oec.env.repos import RepoIndex
from oec.models.registry import make_provider
from oec.models.scripted import register_script

STUDENT_STEPS = ["Let me look.\n```bash\nls\n```", "```bash\ncat calc/__init__.py\n```",
                 "```bash\ngrep -n add calc/__init__.py\n```", "```bash\npwd\n```", "```bash\nls tests\n```"]
EXPERT_FIX = {"text": "Fix the operator.", "tool_calls": [{"name": "str_replace_editor", "arguments": {
    "command": "str_replace", "path": "calc/__init__.py", "old_str": "return a - b", "new_str": "return a + b"}}]}
EXPERT_SUBMIT = {"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}

register_script("t-student", STUDENT_STEPS, final="```bash\necho idle\n```")
register_script("t-expert", [EXPERT_FIX, EXPERT_SUBMIT], native_tools=True)
register_script("t-student-submits", ["```bash\nls\n```", "<function=submit>\n</function>"])
register_script("t-student-breaks", [
    "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>calc/__init__.py"
    "</parameter>\n<parameter=old_str>return a * b</parameter>\n<parameter=new_str>return 0</parameter>\n</function>",
    "```bash\necho junk > notes.txt\n```",
], final="```bash\nls\n```")


def _config(swe_repo, strategy: str, switch, student="scripted:t-student", expert="scripted:t-expert", **kw):
    return RolloutConfig(strategy=strategy, student=make_provider(student), expert=make_provider(expert),
                         switch=switch, repos=RepoIndex([swe_repo.repos_dir]), **kw)


def test_oec_with_k3_hands_the_same_history_to_the_expert(swe_repo) -> None:
    config = _config(swe_repo, "oec", FixedSwitch(3))
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, config))

    assert [s.source for s in trajectory.steps] == ["student"] * 3 + ["expert"] * 2
    assert trajectory.switch_step == 3 and trajectory.planned_switch == 3
    assert trajectory.exit_reason == "submitted" and trajectory.resolved
    assert "+    return a + b" in trajectory.patch
    (expert_model,) = config.expert.models
    first_request = expert_model.calls[0]
    assert [m.role for m in first_request] == ["system", "user"] + ["assistant", "tool"] * 3
    assert [m.tool_calls[0].arguments["command"] for m in first_request if m.role == "assistant"] == [
        "ls", "cat calc/__init__.py", "grep -n add calc/__init__.py"]
    assert "def add" in first_request[5].content  # the student's observation travelled with the history
    assert trajectory.usage["student"].calls == 3 and trajectory.usage["expert"].calls == 2


def test_k0_is_a_pure_expert_rollout(swe_repo) -> None:
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, _config(swe_repo, "oec", FixedSwitch(0))))
    assert {s.source for s in trajectory.steps} == {"expert"} and trajectory.switch_step == 0
    assert trajectory.resolved


def test_student_that_submits_before_k_gives_a_pure_student_rollout(swe_repo) -> None:
    config = _config(swe_repo, "oec", FixedSwitch(5), student="scripted:t-student-submits")
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, config))
    assert [s.source for s in trajectory.steps] == ["student", "student"]
    assert trajectory.switch_step is None and trajectory.exit_reason == "submitted"
    assert not trajectory.resolved and trajectory.reward.status == "unresolved"
    assert config.expert.models[0].calls == []


def test_bc_and_on_policy_use_one_model_each(swe_repo) -> None:
    bc = asyncio.run(run_rollout(swe_repo.task, 0, _config(swe_repo, "bc", None)))
    assert {s.source for s in bc.steps} == {"expert"} and bc.switch_step == 0 and bc.student is None
    limited = _config(swe_repo, "on-policy", None, limits=EpisodeLimits(max_calls_per_model=4))
    on_policy = asyncio.run(run_rollout(swe_repo.task, 0, limited))
    assert {s.source for s in on_policy.steps} == {"student"} and on_policy.switch_step is None
    assert on_policy.exit_reason == "call_limit" and len(on_policy.steps) == 4
    assert on_policy.reward is not None and not on_policy.resolved  # graded all the same


def test_format_errors_count_toward_limits(swe_repo) -> None:
    register_script("t-chatty", [], final="I am thinking about it.")
    config = _config(swe_repo, "on-policy", None, student="scripted:t-chatty", limits=EpisodeLimits(max_calls_per_model=3))
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, config))
    assert len(trajectory.steps) == 3 and all(s.format_error for s in trajectory.steps)
    assert trajectory.exit_reason == "call_limit"
    second_call = config.student.models[0].calls[1]
    assert second_call[-1].role == "user" and second_call[-1].content.startswith("FORMAT ERROR")


def test_a_format_error_streak_ends_the_rollout_but_not_an_experts_turns(swe_repo) -> None:
    register_script("t-chatty-then-acts", ["I am thinking.", "Still thinking.", "```bash\nls\n```", "Hmm.",
                                           "Hmm?"], final="I am thinking about it.")
    limits = EpisodeLimits(max_calls_per_model=10, max_format_errors=3)
    alone = asyncio.run(run_rollout(swe_repo.task, 0, _config(
        swe_repo, "on-policy", None, student="scripted:t-chatty-then-acts", limits=limits)))
    # two errors, a valid action (the streak restarts), three more errors: the limit ends it there
    assert [s.format_error is None for s in alone.steps] == [False, False, True, False, False, False]
    assert alone.exit_reason == "format_errors" and "3 replies in a row" in (alone.error or "")
    assert alone.reward is not None and not alone.resolved  # graded: a model that writes no action is unresolved

    register_script("t-chatty", [], final="I am thinking about it.")
    handed = asyncio.run(run_rollout(swe_repo.task, 0, _config(
        swe_repo, "oec", FixedSwitch(3), student="scripted:t-chatty",
        limits=EpisodeLimits(max_calls_per_model=10, max_format_errors=2))))
    # a student an expert takes over from is left to its switch; its errors do not count against the expert
    assert [s.source for s in handed.steps] == ["student"] * 3 + ["expert"] * 2
    assert handed.exit_reason == "submitted" and handed.resolved


def test_switch_specs_parse_and_reject_junk() -> None:
    assert parse_switch("uniform:0-30") == UniformSwitch(0, 30)
    assert parse_switch("fixed:4") == FixedSwitch(4)
    assert parse_switch("tokens:500").spec == "tokens:500" and parse_switch("cost:0.5").spec == "cost:0.5"
    for junk in ("uniform:5-1", "random", "fixed:-1", "exec:print(1)"):
        with pytest.raises(ValueError):
            parse_switch(junk)


def test_token_threshold_switch(swe_repo) -> None:
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, _config(swe_repo, "oec", parse_switch("tokens:1"))))
    assert trajectory.switch_step == 1  # the first student call already used a token


def test_collect_is_seeded_and_resumes(swe_repo, tmp_path: Path) -> None:
    def run(out: Path):
        configs = [_config(swe_repo, "oec", UniformSwitch(0, 4), seed=7)]
        summary = asyncio.run(collect([swe_repo.task], configs, RunDir(out), samples=4, concurrency=3))
        return summary

    first = run(tmp_path / "a")
    second = run(tmp_path / "b")
    switches = lambda s: sorted((t.id, t.planned_switch, t.switch_step) for t in s.finished)  # noqa: E731
    assert switches(first) == switches(second)
    assert len({t.planned_switch for t in first.finished}) > 1  # the draws differ across samples
    again = run(tmp_path / "a")
    assert again.skipped == 4 and again.finished == []
    lines = (tmp_path / "a" / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["schema_version"] == 1 for line in lines)


def test_cli_collect_writes_trajectories_whose_sources_agree_with_the_switch(swe_repo, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n")
    out = tmp_path / "run"
    args = ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--student", "scripted:t-student",
            "--expert", "scripted:t-expert", "--strategy", "oec,on-policy", "--switch", "uniform:0-3",
            "--samples", "2", "--seed", "3", "--max-calls", "6", "--out", str(out), "--concurrency", "2",
            "--grading-slots", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert all(r["reward"] is not None for r in records)  # every one graded, through the one grading slot
    assert sorted(r["id"] for r in records) == sorted(
        f"acme__calc-1/{s}/{i}" for s in ("oec", "on-policy") for i in range(2))
    for r in records:
        k = r["switch_step"]
        assert all((s["source"] == "student") == (k is None or s["index"] < k) for s in r["steps"])
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["switch"] == "uniform:0-3"
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0 and "4 already done and skipped" in rerun.output
    clash = CliRunner().invoke(app, [a if a != "3" else "4" for a in args])  # another --seed, same --out
    assert clash.exit_code == 2 and "different run" in clash.output


def test_student_that_breaks_a_file_then_oracle_ends_resolved(swe_repo) -> None:
    config = _config(swe_repo, "oec", FixedSwitch(2), student="scripted:t-student-breaks", expert="oracle")
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, config))
    assert [s.source for s in trajectory.steps[:3]] == ["student", "student", "expert"]
    assert "return 0" not in trajectory.patch and "notes.txt" not in trajectory.patch
    assert trajectory.exit_reason == "submitted" and trajectory.resolved, trajectory.reward
    assert trajectory.steps[-1].action.tool == "submit" and trajectory.steps[-1].source == "expert"
