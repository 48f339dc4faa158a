"""Faults end one rollout, never the run: model servers, model and grader bugs, bad task rows, wild commands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fake_http import FakeServer, Reply, free_port
from typer.testing import CliRunner

from oec.cli import app
from oec.collect.attempts import AttemptLog
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir
from oec.collect.runner import collect
from oec.collect.schedules import UniformSwitch
from oec.collect.seeding import rollout_rng
from oec.env.repos import RepoIndex
from oec.models.registry import ModelOptions, make_provider
from oec.models.scripted import register_script

FIX = {"text": "Fix it.", "tool_calls": [{"name": "str_replace_editor", "arguments": {
    "command": "str_replace", "path": "calc/__init__.py", "old_str": "return a - b", "new_str": "return a + b"}}]}
SUBMIT = {"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}
register_script("f-expert", [FIX, SUBMIT], native_tools=True)
SEED, SWITCH = 1, UniformSwitch(0, 1)  # samples 0 and 1 call the student first (k=1), sample 2 does not (k=0)


@pytest.fixture
def server():
    s = FakeServer().start()
    yield s
    s.stop()


def _run(swe_repo, tmp_path: Path, student, *, samples: int = 3, grade: bool = False):
    """Every rollout ends: those that ran are in trajectories.jsonl, those that failed to run in attempts.jsonl."""
    config = RolloutConfig(strategy="oec", student=student, expert=make_provider("scripted:f-expert"), switch=SWITCH,
                           repos=RepoIndex([swe_repo.repos_dir]), seed=SEED, work_root=tmp_path / "work",
                           grade=grade)
    summary = asyncio.run(collect([swe_repo.task], [config], RunDir(tmp_path / "run"), samples=samples,
                                  concurrency=2, max_consecutive_failures=0))
    ran = {t.id: t for t in RunDir(tmp_path / "run").read()}
    failed = {a.id: a for a in AttemptLog(tmp_path / "run").read()}
    assert len(ran) == len(summary.finished) and len(failed) == len(summary.failed)
    assert not set(ran) & set(failed) and len(ran) + len(failed) == samples  # every rollout ended, once
    return [ran.get(f"acme__calc-1/oec/{i}") or failed[f"acme__calc-1/oec/{i}"] for i in range(samples)]


@pytest.mark.parametrize("kind,reply,attempts", [
    ("rate_limit", Reply(429, {"error": {"message": "slow down"}}), 3),
    ("server", Reply(500, {"error": {"message": "boom"}}), 3),
    ("bad_response", Reply(200, "<html>this is not JSON</html>"), 3),
    ("bad_response", Reply(200, {"object": "chat.completion", "choices": []}), 3),
    ("timeout", Reply(hang=True), 3),
])
def test_a_failing_model_server_ends_the_rollout_with_model_error(swe_repo, tmp_path: Path, server: FakeServer,
                                                                  kind: str, reply: Reply, attempts: int) -> None:
    assert [SWITCH.plan(rollout_rng(SEED, "acme__calc-1", "oec", i)) for i in range(3)] == [1, 1, 0]
    server.replies = [reply]
    options = ModelOptions(base_url=server.url + "/v1", api_key="sk-test", max_retries=attempts - 1,
                           retry_base_s=0.01, retry_max_s=0.02, timeout_s=0.3)
    records = _run(swe_repo, tmp_path, make_provider("openai:fake-model", options))

    for failed in records[:2]:
        assert failed.exit_reason == "model_error"
        assert failed.error.startswith(f"{kind}: ") and f"gave up after {attempts} attempts" in failed.error
        assert failed.steps == 0 and failed.error_kind == kind and failed.attempt == 1
    assert records[2].exit_reason == "submitted" and records[2].error is None  # the others go on
    assert server.attempts == 2 * attempts


def test_a_model_server_that_is_down_ends_the_rollout_with_model_error(swe_repo, tmp_path: Path) -> None:
    options = ModelOptions(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="sk-test", max_retries=1,
                           retry_base_s=0.01, retry_max_s=0.02, timeout_s=0.3)
    records = _run(swe_repo, tmp_path, make_provider("openai:fake-model", options))
    assert [r.exit_reason for r in records] == ["model_error", "model_error", "submitted"]
    assert records[0].error.startswith("connection: ") and "gave up after 2 attempts" in records[0].error


def test_a_model_raising_a_non_model_error_ends_only_its_rollout(swe_repo, tmp_path: Path) -> None:
    register_script("f-buggy-first", [RuntimeError("backend bug")])
    records = _run(swe_repo, tmp_path, make_provider("scripted:f-buggy-first"))
    assert [r.exit_reason for r in records] == ["model_error", "model_error", "submitted"]
    assert records[0].error == "other: RuntimeError: backend bug"


def test_a_grader_crash_is_the_rollouts_exit_reason(swe_repo, tmp_path: Path, monkeypatch) -> None:
    from oec.collect import rollout

    real_grade, calls = rollout.grade, []

    def flaky_grade(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("grader fell over")
        return real_grade(*args, **kwargs)

    monkeypatch.setattr(rollout, "grade", flaky_grade)
    register_script("f-quiet", ["```bash\nls\n```"])
    records = _run(swe_repo, tmp_path, make_provider("scripted:f-quiet"), grade=True)
    crashed = [r for r in records if r.exit_reason == "grade_error"]
    assert len(crashed) == 1 and crashed[0].error == "MemoryError: grader fell over"
    assert sum(getattr(r, "resolved", False) for r in records) == 2


class _BrokenProvider:
    spec = "scripted:broken"

    def for_task(self, task):
        raise OSError("cannot load weights on this worker")


def test_an_exception_outside_the_episode_is_recorded_as_error(swe_repo, tmp_path: Path) -> None:
    records = _run(swe_repo, tmp_path, _BrokenProvider(), samples=2)
    for r in records:  # failed to run: recorded as attempts, with the detail
        assert r.exit_reason == "error" and r.error.startswith("OSError: cannot load weights on this worker")


def test_bad_task_rows_are_reported_and_the_good_ones_run(swe_repo, tmp_path: Path) -> None:
    register_script("f-submitter", ["<function=submit>\n</function>"])
    missing = {k: v for k, v in swe_repo.row.items() if k != "repo"}
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n" + json.dumps(missing) + "\n{not json\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--strategy",
                                      "on-policy", "--student", "scripted:f-submitter", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{tasks}:2: field 'repo'" in result.output and f"{tasks}:3: invalid JSON" in result.output
    assert [r["id"] for r in map(json.loads, (out / "trajectories.jsonl").read_text().splitlines())] == [
        "acme__calc-1/on-policy/0"]


def test_a_hanging_and_a_flooding_command_are_cut_off_and_the_rollout_goes_on(swe_repo, tmp_path: Path) -> None:
    register_script("f-wild", ["```bash\nsleep 100\n```", "```bash\nyes\n```", "```bash\necho still here\n```",
                               "<function=submit>\n</function>"])
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--strategy",
                                      "on-policy", "--student", "scripted:f-wild", "--command-timeout", "1",
                                      "--max-observation-chars", "2000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = map(json.loads, (out / "trajectories.jsonl").read_text().splitlines())
    hang, flood, after, submit = record["steps"]
    assert "command timed out after 1 s" in hang["observation"] and hang["exit_code"] is None
    assert "[command timed out and was killed]" in hang["observation"]
    assert "y\ny\n" in flood["observation"] and "printed more than" in flood["observation"]
    assert len(flood["observation"]) <= 2200 and flood["exit_code"] is None
    assert after["observation"].strip() == "still here"
    assert record["exit_reason"] == "submitted" and record["reward"]["status"] == "unresolved"
