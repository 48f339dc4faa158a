"""The honest path through the hardened one: every gold patch resolves, the oracle resolves every task, and
`oec filter`'s reward-hack rule keeps all of those rollouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attacks import run_cli

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")


def test_bundled_gold_patches_resolve_and_empty_ones_do_not(tmp_path: Path) -> None:
    for patch, expected in (("gold", 18), ("empty", 0)):
        out = tmp_path / f"{patch}.json"
        code, output = run_cli("grade", "--patch", patch, "--out", out, "--jobs", "2")
        assert code == 0, output
        results = json.loads(out.read_text())
        assert len(results) == 18 and sum(r["resolved"] for r in results) == expected
        assert all(r["status_source"] == "report" and r["dropped"] == {} for r in results)


@pytest.mark.slow
def test_the_oracle_resolves_every_bundled_task_and_the_filter_keeps_them(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output = run_cli("collect", "--strategy", "bc", "--expert", "oracle", "--out", run, "--concurrency", "4")
    assert code == 0, output
    records = [json.loads(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 18 and all(r["reward"]["resolved"] for r in records)
    code, output = run_cli("filter", run)
    assert code == 0, output
    report = json.loads((run / "filter_report.json").read_text())
    assert report["kept"] == 18 and report["dropped"]["reward_hack"] == 0
