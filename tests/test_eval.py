"""Evaluation numbers: Wilson intervals, eval summaries from real graded rollouts, the compare table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.collect.episode import EpisodeLimits
from oec.env.repos import RepoIndex
from oec.eval.evaluate import evaluate, load_summary
from oec.eval.stats import wilson_interval
from oec.models.scripted import register_script

register_script("eval-fixer", [
    "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>calc/__init__.py"
    "</parameter>\n<parameter=old_str>return a - b</parameter>\n<parameter=new_str>return a + b</parameter>\n"
    "</function>",
    "<function=submit>\n</function>",
])
register_script("eval-idler", [], final="```bash\nls\n```")


@pytest.mark.parametrize("k, n, low, high", [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (1, 3, 0.0615, 0.7923),
])
def test_wilson_interval_matches_reference_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_edge_cases() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_evaluate_grades_student_only_rollouts_and_resumes(swe_repo, tmp_path: Path) -> None:
    repos = RepoIndex([swe_repo.repos_dir])
    fixer = asyncio.run(evaluate("scripted:eval-fixer", [swe_repo.task], repos, tmp_path / "fixer", samples=2,
                                 limits=EpisodeLimits(max_calls_per_model=4), data_source="oec"))
    assert (fixer.n, fixer.resolved, fixer.rate) == (2, 2, 1.0)
    assert fixer.ci_low == pytest.approx(wilson_interval(2, 2)[0]) and fixer.exit_reasons == {"submitted": 2}
    idler = asyncio.run(evaluate("scripted:eval-idler", [swe_repo.task], repos, tmp_path / "idler",
                                 limits=EpisodeLimits(max_calls_per_model=2)))
    assert (idler.n, idler.resolved) == (1, 0) and idler.exit_reasons == {"call_limit": 1}
    again = asyncio.run(evaluate("scripted:eval-fixer", [swe_repo.task], repos, tmp_path / "fixer", samples=2,
                                 limits=EpisodeLimits(max_calls_per_model=4), data_source="oec"))
    assert again.n == 2  # resumed: nothing ran twice, nothing counted twice
    assert load_summary(tmp_path / "fixer") == again

    table = CliRunner().invoke(app, ["compare", str(tmp_path / "fixer"), str(tmp_path / "idler")])
    assert table.exit_code == 0, table.output
    assert "100.0%" in table.output and "| 0.0%" in table.output.replace("│", "|")
    missing = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "eval.json" in missing.output


def test_oec_eval_prints_process_metrics(swe_repo, tmp_path: Path) -> None:
    """Beside the resolve rate, `oec eval` shows what the student did: here every reply a valid action, the fix's
    file edited, submitted, no test run."""
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(swe_repo.task.model_dump_json() + "\n")
    result = CliRunner().invoke(app, ["eval", "--model", "scripted:eval-fixer", "--tasks", str(tasks), "--repos",
                                      str(swe_repo.repos_dir), "--out", str(tmp_path / "fixer"), "--max-calls", "4",
                                      "--no-preflight"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.replace("│", " ").split())
    assert "process metrics" in flat
    # eval, rollouts, steps/rollout, valid actions, submitted, edited the fix's file, ran tests
    assert "1 2.0 100% 100% 100% 0%" in flat, flat
