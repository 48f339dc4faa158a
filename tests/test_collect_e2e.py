"""`oec collect` end to end with the embedded default: the real SmolLM2 student and the oracle expert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.tasks.bundled import load_bundled_tasks


@pytest.mark.slow
def test_collect_oec_with_the_default_student_and_oracle(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    chosen = load_bundled_tasks()[:2]
    tasks.write_text("".join(t.model_dump_json() + "\n" for t in chosen))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["collect", str(tasks), "--student", "hf:smollm2-135m", "--expert", "oracle",
                                      "--strategy", "oec", "--switch", "fixed:2", "--max-tokens", "48",
                                      "--out", str(out), "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert {r["instance_id"] for r in records} == {t.instance_id for t in chosen}
    for r in records:
        assert r["student"] == "hf:smollm2-135m" and r["expert"] == "oracle"
        k = r["switch_step"]
        assert all((s["source"] == "student") == (k is None or s["index"] < k) for s in r["steps"])
        student_steps = [s for s in r["steps"] if s["source"] == "student"]
        assert student_steps and all(s["raw_text"] for s in student_steps)  # the real model spoke
        if k is not None:  # the oracle took over and, acting from the student's state, fixed the bug
            assert r["exit_reason"] == "submitted" and r["reward"]["resolved"]
