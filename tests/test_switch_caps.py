"""The switch and the call caps, validated together at start, and the switch step honoured at the cap.

Reproduces the report: `--switch fixed:5 --max-student-calls 3` used to end every OEC rollout at the cap
with no switch; it is now refused before anything runs, naming both flags.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.collect.episode import EpisodeLimits
from oec.collect.rollout import RolloutConfig, run_rollout
from oec.collect.schedules import check_switch_fits, parse_switch
from oec.env.repos import RepoIndex
from oec.models.registry import make_provider
from oec.models.scripted import register_script

register_script("caps-student", [], final="```bash\nls\n```")
register_script("caps-expert", [{"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}],
                native_tools=True)


@pytest.mark.parametrize("switch,caps,flag", [
    ("fixed:5", {"max_calls": 75, "max_student_calls": 3, "max_steps": 150}, "--max-student-calls 3"),
    ("uniform:0-30", {"max_calls": 20, "max_student_calls": None, "max_steps": 150}, "--max-calls 20"),
    ("uniform:0-30", {"max_calls": 75, "max_student_calls": 40, "max_steps": 30}, "--max-steps 30"),
    ("divergence:loop=3;max=10", {"max_calls": 75, "max_student_calls": 5, "max_steps": 150},
     "--max-student-calls 5"),
])
def test_a_switch_the_caps_would_cut_off_is_refused_naming_the_flags(switch, caps, flag) -> None:
    with pytest.raises(ValueError, match=f"--switch {switch.split(';')[0]}.*{flag}"):
        check_switch_fits(parse_switch(switch), **caps)


@pytest.mark.parametrize("switch", ["fixed:3", "uniform:0-3", "tokens:100", "cost:1", "divergence:loop=3"])
def test_switches_within_the_caps_or_unknown_up_front_are_accepted(switch) -> None:
    check_switch_fits(parse_switch(switch), max_calls=75, max_student_calls=3, max_steps=150)


def test_the_cli_refuses_before_writing_anything(swe_repo, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--student",
                                      "scripted:caps-student", "--expert", "scripted:caps-expert", "--switch",
                                      "fixed:5", "--max-student-calls", "3", "--out", str(out)])
    assert result.exit_code == 2
    assert "--switch fixed:5" in result.output and "--max-student-calls 3" in result.output
    assert not out.exists()
    # on-policy alone never switches: the same caps are fine there
    ok = CliRunner().invoke(app, ["collect", str(tasks), "--repos", str(swe_repo.repos_dir), "--student",
                                  "scripted:caps-student", "--strategy", "on-policy", "--switch", "fixed:5",
                                  "--max-student-calls", "3", "--out", str(out)])
    assert ok.exit_code == 0, ok.output


def test_a_switch_not_known_up_front_hands_over_at_the_students_cap(swe_repo) -> None:
    """tokens:N that the student never reaches: the expert takes over at the student's last allowed call."""
    config = RolloutConfig(strategy="oec", student=make_provider("scripted:caps-student"),
                           expert=make_provider("scripted:caps-expert"), switch=parse_switch("tokens:100000000"),
                           repos=RepoIndex([swe_repo.repos_dir]), limits=EpisodeLimits(max_student_calls=3))
    trajectory = asyncio.run(run_rollout(swe_repo.task, 0, config))
    assert [s.source for s in trajectory.steps] == ["student"] * 3 + ["expert"]
    assert trajectory.switch_step == 3 and trajectory.exit_reason == "submitted"
