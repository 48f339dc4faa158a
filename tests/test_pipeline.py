"""`oec run`: configs are validated with precise errors; the whole chain runs and then skips what is current."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.pipeline.config import DEFAULT_CONFIG, ConfigError, load_config
from oec.pipeline.run import is_current, split_tasks
from oec.tasks.bundled import load_bundled_tasks


def test_default_config_is_valid_and_typos_name_file_and_field(tmp_path: Path) -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.models.student == "hf:smollm2-135m" and config.models.expert == "oracle"
    bad = tmp_path / "bad.toml"
    bad.write_text("[collect]\nswitchh = 'uniform:0-3'\n[train]\nlr = 'fast'\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(bad) in str(info.value) and "collect.switchh" in str(info.value) and "train.lr" in str(info.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(broken)


def test_split_is_stable_and_disjoint() -> None:
    tasks = load_bundled_tasks()
    train, held_out = split_tasks(tasks, 0.34, seed=0)
    assert not {t.instance_id for t in train} & {t.instance_id for t in held_out}
    assert len(train) + len(held_out) == len(tasks) and held_out
    reordered = split_tasks(list(reversed(tasks)), 0.34, seed=0)[1]
    assert {t.instance_id for t in reordered} == {t.instance_id for t in held_out}  # order does not matter


def test_is_current_follows_mtimes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert not is_current(b, a)
    a.write_text("x")
    b.write_text("y")
    assert is_current(b, a)
    os.utime(a, (b.stat().st_mtime + 10, b.stat().st_mtime + 10))
    assert not is_current(b, a)


@pytest.mark.slow
def test_oec_run_end_to_end_then_resumes_without_redoing(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    out = tmp_path / "run"
    config.write_text(f"""
[run]
out = "{out}"
[tasks]
limit = 3
eval_fraction = 0.34
[models]
max_tokens = 16
[collect]
strategies = ["bc", "oec"]
switch = "fixed:1"
max_calls = 10
max_student_calls = 1
max_observation_chars = 500
[train]
max_steps = 1
max_length = 2048
[eval]
max_calls = 1
max_tokens = 24
""")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "collect" / "trajectories.jsonl").read_text().splitlines()]
    assert {r["strategy"] for r in records} == {"bc", "oec"}
    assert (out / "collect" / "filter_report.json").exists()
    sft = [json.loads(line) for line in (out / "sft.messages.jsonl").read_text().splitlines()]
    assert sft and all(m.get("train") is not None for r in sft for m in r["messages"] if m["role"] == "assistant")
    assert (out / "checkpoint" / "oec_train.json").exists() and (out / "checkpoint" / "config.json").exists()
    for label in ("base", "trained"):
        summary = json.loads((out / "eval" / label / "eval.json").read_text())
        assert summary["n"] >= 1 and 0.0 <= summary["ci_low"] <= summary["rate"] <= summary["ci_high"] <= 1.0
    assert "evaluations" in result.output
    flat = " ".join(result.output.replace("│", " ").split())  # the table wraps its headers at 80 columns
    assert "process metrics" in flat, result.output
    for label in ("base", "trained"):  # base vs trained, side by side: rollouts, steps, then four rates
        assert re.search(rf"\b{label} 1 1\.0 \d+% \d+% \d+% \d+%", flat), result.output
    for label in ("base", "trained"):  # [eval] max_tokens caps the student's replies there, not in collection
        steps = [s for line in (out / "eval" / label / "trajectories.jsonl").read_text().splitlines()
                 for s in json.loads(line)["steps"]]
        assert steps and all(s["usage"]["completion_tokens"] <= 24 for s in steps)
        assert any(s["usage"]["completion_tokens"] > 16 for s in steps)

    again = CliRunner().invoke(app, ["run", str(config)])
    assert again.exit_code == 0, again.output
    assert again.output.count("up to date") >= 5  # filter, export, train, two evaluations
