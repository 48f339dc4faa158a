"""Collecting through Ray on a local cluster gives the trajectories the local executor gives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from oec.cli import app
from oec.collect.records import Trajectory
from oec.collect.rollout import RolloutConfig
from oec.collect.run_dir import RunDir
from oec.collect.runner import collect
from oec.collect.schedules import UniformSwitch
from oec.env.repos import RepoIndex
from oec.models.portable import PortableProvider

FIX = {"text": "Fix it.", "tool_calls": [{"name": "str_replace_editor", "arguments": {
    "command": "str_replace", "path": "calc/__init__.py", "old_str": "return a - b", "new_str": "return a + b"}}]}
SUBMIT = {"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}
STUDENT = {"replies": ["```bash\nls\n```", "```bash\ncat calc/__init__.py\n```",
                       "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>"
                       "calc/__init__.py</parameter>\n<parameter=old_str>return a * b</parameter>\n"
                       "<parameter=new_str>return 0</parameter>\n</function>"],
           "final": "```bash\necho idle\n```"}


@pytest.fixture
def scripts(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "student.json").write_text(json.dumps(STUDENT))
    (tmp_path / "expert.json").write_text(json.dumps({"replies": [FIX, SUBMIT], "native_tools": True}))
    return f"scripted:@{tmp_path / 'student.json'}", f"scripted:@{tmp_path / 'expert.json'}"


@pytest.fixture(autouse=True)
def no_ray_left_running():
    yield
    if ray.is_initialized():
        ray.shutdown()


def _key(records: list[dict]) -> list[tuple]:
    return sorted((r["id"], r["planned_switch"], r["switch_step"], tuple(s["source"] for s in r["steps"]),
                   r["exit_reason"], r["reward"]["resolved"], r["reward"]["status"], r["patch"]) for r in records)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_cli_collect_through_ray_matches_the_local_executor(swe_repo, scripts, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n")
    student, expert = scripts
    args = ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--student", student, "--expert", expert,
            "--strategy", "oec,on-policy", "--switch", "uniform:0-3", "--samples", "3", "--seed", "11",
            "--max-calls", "5", "--concurrency", "3"]
    local = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(app, [*args, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert remote.exit_code == 0, remote.output
    assert not ray.is_initialized()  # the cluster oec started is shut down

    expected = _key(_records(tmp_path / "local"))
    assert len(expected) == 6 and len({k[2] for k in expected}) > 1
    assert _key(_records(tmp_path / "ray")) == expected


@pytest.mark.slow
def test_ray_executor_on_a_cluster_started_by_the_caller(swe_repo, scripts, tmp_path: Path) -> None:
    from oec.collect.ray_executor import RayExecutor

    ray.init(num_cpus=2, resources={"sandbox": 2}, include_dashboard=False, log_to_driver=False)
    student, expert = scripts
    config = RolloutConfig(strategy="oec", student=PortableProvider(student), expert=PortableProvider(expert),
                           switch=UniformSwitch(0, 3), repos=RepoIndex([swe_repo.repos_dir]), seed=4)
    executor = RayExecutor(concurrency=4)
    assert executor.options == {"num_cpus": 0.25, "resources": {"sandbox": 1}}
    summary = asyncio.run(collect([swe_repo.task], [config], RunDir(tmp_path / "ray"), samples=4, executor=executor))
    executor.close()
    assert ray.is_initialized()  # not ours to shut down
    local = asyncio.run(collect([swe_repo.task], [config], RunDir(tmp_path / "local"), samples=4))
    as_dicts = lambda s: [json.loads(t.model_dump_json()) for t in s.finished]
    assert _key(as_dicts(summary)) == _key(as_dicts(local))
    assert all(isinstance(t, Trajectory) for t in summary.finished)
