"""Divergence switching: detectors that hand the rollout to the expert when the student goes off course.

Scripted students act in the real sandbox (the `swe_repo` fixture); the judge and likelihood detectors are
exercised against the real local transformers backend (SmolLM2-135M), not mocks.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.collect.divergence import (
    DivergenceSwitch,
    added_lines,
    parse_divergence,
    parse_verdict,
)
from oec.collect.episode import EpisodeLimits
from oec.collect.records import Firing, ModelUsage, Trajectory
from oec.collect.rollout import RolloutConfig, run_rollout
from oec.collect.schedules import parse_switch
from oec.data.filters import repetition
from oec.env.repos import RepoIndex
from oec.models.registry import ModelOptions, make_provider
from oec.models.scripted import register_script
from oec.report.criteria import compare_criteria, criteria_table, quantile

EXPERT_FIX = {"text": "Fix the operator.", "tool_calls": [{"name": "str_replace_editor", "arguments": {
    "command": "str_replace", "path": "calc/__init__.py", "old_str": "return a - b", "new_str": "return a + b"}}]}
EXPERT_SUBMIT = {"text": "Done.", "tool_calls": [{"name": "submit", "arguments": {}}]}
SUBMIT = "<function=submit>\n</function>"


def _edit(old: str, new: str, path: str = "calc/__init__.py") -> str:
    return (f"<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>{path}"
            f"</parameter>\n<parameter=old_str>{old}</parameter>\n<parameter=new_str>{new}</parameter>\n</function>")


def _varied(messages) -> str:  # a different harmless read every call
    return f"```bash\necho reading {len(messages)} && ls calc\n```"


register_script("dv-expert", [EXPERT_FIX, EXPERT_SUBMIT], native_tools=True)
register_script("dv-looper", [], final="```bash\nls\n```")
register_script("dv-breaks-mul", [_edit("return a * b", "return 0")], final=_varied)
register_script("dv-behaves", [], final=_varied)
register_script("dv-stray", ["```bash\nls\n```", "```bash\necho junk > notes.txt\n```"], final=_varied)
register_script("dv-undoes", [_edit("return a - b", "return a + b"), _edit("return a + b", "return a - b")],
                final=_varied)
register_script("dv-errors", ["I think the bug is in add.", "```bash\ncat missing.txt\n```",
                              "```bash\nexit 3\n```"], final=_varied)
register_script("dv-reads-then-submits", ["```bash\nls\n```", "```bash\ncat calc/__init__.py\n```", SUBMIT])


def _config(swe_repo, switch: str, student: str, expert: str = "scripted:dv-expert", **kw) -> RolloutConfig:
    expert_provider = kw.pop("expert_provider", None) or make_provider(expert)
    return RolloutConfig(strategy="oec", student=make_provider(student), expert=expert_provider,
                         switch=parse_switch(switch), repos=RepoIndex([swe_repo.repos_dir]), **kw)


def _run(swe_repo, switch: str, student: str, **kw) -> Trajectory:
    return asyncio.run(run_rollout(swe_repo.task, 0, _config(swe_repo, switch, student, **kw)))


def _sources(t: Trajectory) -> list[str]:
    return [s.source for s in t.steps]


# -- spec -----------------------------------------------------------------------------------------


def test_spec_accepts_the_documented_forms() -> None:
    full = parse_switch("divergence:loop=3,errors=3,regression=5,judge=5,likelihood=-4.0,oracle;min=2,max=30")
    assert full == DivergenceSwitch(loop=3, errors=3, regression=5, judge=5, likelihood=-4.0, oracle=True,
                                    min_step=2, max_step=30)
    assert parse_switch(full.spec) == full  # the canonical spec round-trips (it is the run's identity)
    assert parse_switch("divergence:oracle,loop").spec == "divergence:loop=3,oracle"  # defaults, fixed order
    assert parse_switch("divergence:errors=2;max=10").spec == "divergence:errors=2;max=10"
    assert parse_switch("divergence:likelihood=-.5;min=1").likelihood == -0.5
    assert parse_switch(" Divergence:LOOP=4 ").loop == 4
    assert parse_divergence("divergence:judge").judge == 5 and parse_switch("divergence:loop").plan(None) is None


@pytest.mark.parametrize("junk", [
    "divergence", "divergence:", "divergence:loop=1", "divergence:errors=0", "divergence:judge=-1",
    "divergence:nope", "divergence:loop,loop", "divergence:oracle=yes", "divergence:likelihood=0.5",
    "divergence:likelihood=abc", "divergence:loop=3.5", "divergence:loop;", "divergence:loop;min=5,max=2",
    "divergence:loop;cap=3", "divergence:loop;min=1,min=2", "divergence:loop,,errors", "divergence:loop=",
    "divergence:loop;max=30;min=2", "divergencex:loop", "divergence:exec(print(1))",
])
def test_spec_rejects_junk_and_lists_the_forms(junk: str) -> None:
    with pytest.raises(ValueError, match="forms: divergence:DETECTOR"):
        parse_switch(junk)


def test_should_switch_respects_floor_and_cap() -> None:
    from oec.collect.schedules import StudentProgress

    switch = parse_switch("divergence:loop;min=2,max=5")
    fired = Firing(detector="loop", step=0, reason="x")
    assert not switch.should_switch(StudentProgress(calls=1), None, fired)  # never before min
    assert switch.should_switch(StudentProgress(calls=2), None, fired)
    assert not switch.should_switch(StudentProgress(calls=4), None)
    assert switch.should_switch(StudentProgress(calls=5), None)  # always by max


# -- rollouts with scripted students in the real sandbox ------------------------------------------


def test_looping_student_is_taken_over_right_after_the_nth_repeat(swe_repo) -> None:
    t = _run(swe_repo, "divergence:loop=3;max=30", "scripted:dv-looper")
    assert _sources(t) == ["student"] * 3 + ["expert"] * 2
    assert t.switch_step == 3 and t.resolved
    assert t.switch_reason.detector == "loop" and t.switch_reason.step == 2
    assert t.switch_reason.evidence == {"kind": "consecutive", "action": "bash:ls", "count": 3, "first_step": 0}
    assert t.divergence_checks == {"loop": 3}
    assert t.planned_switch is None and t.switch_criterion == "divergence:loop=3;max=30"
    # the loop detector and the repetition filter call the same thing a loop
    assert repetition(3).check(t).reason == t.switch_reason.reason


def test_firing_before_the_floor_waits_for_it(swe_repo) -> None:
    t = _run(swe_repo, "divergence:loop=2;min=4", "scripted:dv-looper")
    assert t.switch_step == 4 and t.switch_reason.detector == "loop" and t.switch_reason.step == 1
    assert t.divergence_checks == {"loop": 2}  # nothing runs after the first firing


def test_student_breaking_a_passing_test_is_taken_over_at_the_next_check(swe_repo) -> None:
    t = _run(swe_repo, "divergence:regression=2;max=30", "scripted:dv-breaks-mul", expert="oracle")
    # step 0 breaks mul; the first check may run after 2 student steps: it fires after step 1
    assert t.switch_step == 2 and _sources(t)[:3] == ["student", "student", "expert"]
    assert t.switch_reason.detector == "regression" and t.switch_reason.step == 1
    assert t.switch_reason.evidence["broken"] == ["tests/test_calc.py::test_mul"]
    assert t.divergence_checks == {"regression": 2}  # the baseline and one check
    assert all("pytest" not in (s.action.arguments.get("command", "") if s.action else "")
               for s in t.steps if s.source == "student")  # checks are not agent steps
    assert t.resolved and "return 0" not in t.patch  # the oracle repaired it


def test_behaving_student_is_not_taken_over_before_the_cap(swe_repo) -> None:
    t = _run(swe_repo, "divergence:loop=3,errors=3,regression=1,oracle;max=4", "scripted:dv-behaves")
    assert t.switch_step == 4 and _sources(t)[:5] == ["student"] * 4 + ["expert"]
    assert t.switch_reason.detector == "cap" and t.switch_reason.step == 4
    assert "cap" in t.switch_reason.reason and t.switch_reason.evidence == {"max": 4}
    assert t.divergence_checks["loop"] == 4 and t.divergence_checks["errors"] == 4
    assert t.divergence_checks["regression"] == 1  # the baseline only: the diff never changed
    assert t.resolved


def test_student_that_submits_before_anything_fires_has_no_reason(swe_repo) -> None:
    t = _run(swe_repo, "divergence:loop=3,oracle;max=30", "scripted:dv-reads-then-submits")
    assert t.switch_step is None and t.switch_reason is None and t.exit_reason == "submitted"
    assert t.divergence_checks == {"loop": 2, "oracle": 1}


def test_errors_in_a_row_hand_over(swe_repo) -> None:
    t = _run(swe_repo, "divergence:errors=3", "scripted:dv-errors")
    assert t.switch_step == 3 and t.switch_reason.detector == "errors" and t.switch_reason.step == 2
    assert t.switch_reason.evidence["kinds"] == ["format", "exit 1", "exit 3"]


def test_oracle_detector_fires_on_an_unrelated_file(swe_repo) -> None:
    t = _run(swe_repo, "divergence:oracle;max=30", "scripted:dv-stray", expert="oracle")
    assert t.switch_step == 2 and t.switch_reason.detector == "oracle" and t.switch_reason.step == 1
    assert t.switch_reason.evidence == {"files": ["notes.txt"]}
    assert t.resolved and "notes.txt" not in t.patch


def test_oracle_detector_fires_when_the_fix_is_undone(swe_repo) -> None:
    t = _run(swe_repo, "divergence:oracle;max=30", "scripted:dv-undoes", expert="oracle")
    assert t.switch_step == 2 and t.switch_reason.detector == "oracle"
    assert t.switch_reason.evidence == {"undone": {"calc/__init__.py": ["return a + b"]}}


def test_judge_needs_an_expert_that_can_answer(swe_repo) -> None:
    t = _run(swe_repo, "divergence:judge=1", "scripted:dv-looper", expert="oracle")
    assert t.exit_reason == "model_error" and "oracle" in t.error and t.steps == []


def test_added_lines_reads_hunks_by_their_counts() -> None:
    patch = ("--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,3 @@\n a = 1\n-b = 2\n+b = 3\n+++c\n+)\n"
             "--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-old\n+new\n")
    assert added_lines(patch) == {"x.py": {"b = 3", "++c"}, "y.py": {"new"}}


def test_parse_verdict_is_strict() -> None:
    assert parse_verdict("ON_TRACK") == (True, "")
    assert parse_verdict("  OFF_TRACK: editing the wrong file \n") == (False, "editing the wrong file")
    for junk in ("on_track", "ON_TRACK, mostly", "I think ON_TRACK", "OFF_TRACK:", "OFF_TRACK: a\nb", ""):
        assert parse_verdict(junk) is None


# -- judge and likelihood with the real local transformers backend ---------------------------------


@pytest.fixture(scope="module")
def hf_expert():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return make_provider("hf:smollm2-135m", ModelOptions(max_tokens=8))


@pytest.mark.slow
def test_judge_asks_the_hf_expert_and_counts_its_calls(swe_repo, hf_expert) -> None:
    t = _run(swe_repo, "divergence:judge=1", "scripted:dv-reads-then-submits", expert_provider=hf_expert,
             limits=EpisodeLimits(max_calls_per_model=4))
    judged = t.divergence_checks["judge"]
    assert judged >= 1
    expert_steps = sum(s.source == "expert" for s in t.steps)
    assert t.usage["expert"].calls == judged + expert_steps  # judge calls are expert usage like any other
    assert t.usage["expert"].prompt_tokens > 0 and t.usage["expert"].spec == "hf:smollm2-135m"
    if t.switch_reason is not None:  # whatever it said, it was parsed strictly
        assert t.switch_reason.detector == "judge"
        assert parse_verdict(t.switch_reason.evidence["answer"]) is not None
        assert t.switch_step == t.switch_reason.step + 1
    else:
        assert t.switch_step is None and t.exit_reason == "submitted" and judged == 2
        assert t.divergence_checks.get("judge_unparsed", 0) <= judged


@pytest.mark.slow
def test_likelihood_fires_with_a_high_threshold_and_not_with_a_very_low_one(swe_repo, hf_expert) -> None:
    limits = EpisodeLimits(max_calls_per_model=3)  # the student needs 3 calls to submit
    high = _run(swe_repo, "divergence:likelihood=-0.01", "scripted:dv-reads-then-submits",
                expert_provider=hf_expert, limits=limits)
    assert high.switch_step == 1 and high.switch_reason.detector == "likelihood"
    score = high.switch_reason.evidence["mean_logprob"]
    assert score < -0.01 and high.switch_reason.evidence["threshold"] == -0.01
    low = _run(swe_repo, "divergence:likelihood=-1000", "scripted:dv-reads-then-submits",
               expert_provider=hf_expert, limits=limits)
    assert low.switch_step is None and low.switch_reason is None and low.exit_reason == "submitted"
    assert low.divergence_checks == {"likelihood": 2}  # both reads were scored; the submit ends the episode
    assert "expert" not in low.usage  # scoring is not a completion call


# -- the criteria comparison ----------------------------------------------------------------------


def _traj(i: int, *, switch: int | None, expert_calls: int, resolved: bool, criterion: str,
          reason: str | None = None) -> Trajectory:
    from oec.grading.grader import GradeResult

    return Trajectory(
        id=f"t{i}/oec/0", instance_id=f"t{i}", strategy="oec", sample_index=0, run_seed=0, seed=i,
        switch_criterion=criterion, switch_step=switch, exit_reason="submitted",
        switch_reason=Firing(detector=reason, step=switch or 0, reason=reason) if reason else None,
        divergence_checks={"loop": 2} if reason else {},
        usage={"expert": ModelUsage(spec="oracle", calls=expert_calls)} if expert_calls else {},
        reward=GradeResult(instance_id=f"t{i}", resolved=resolved, status="resolved" if resolved else "unresolved"),
    )


def test_compare_criteria_rows() -> None:
    uniform = [_traj(i, switch=s, expert_calls=5, resolved=r, criterion="uniform:0-10")
               for i, (s, r) in enumerate([(0, True), (4, True), (8, False), (10, True)])]
    divergence = [_traj(1, switch=3, expert_calls=4, resolved=True, criterion="divergence:loop=3", reason="loop"),
                  _traj(2, switch=None, expert_calls=0, resolved=False, criterion="divergence:loop=3"),
                  _traj(3, switch=10, expert_calls=4, resolved=True, criterion="divergence:loop=3", reason="cap")]
    rows = compare_criteria({"uniform": uniform, "divergence": divergence})
    u, d = rows
    assert [r.label for r in rows] == ["uniform", "divergence"]
    assert (u.rollouts, u.switched, u.switch_mean, u.switch_median, u.switch_p25, u.switch_p75, u.switch_max) == (
        4, 4, 5.5, 6.0, 3.0, 8.5, 10)
    assert u.expert_calls == 20 and u.expert_calls_per_rollout == 5.0 and u.resolved == 3 and u.kept == 3
    assert u.kept_per_expert_call == pytest.approx(3 / 20) and 0 < u.resolve_low < 0.75 < u.resolve_high <= 1
    assert d.switched == 2 and d.expert_calls_per_rollout == pytest.approx(8 / 3)
    assert d.reasons == {"cap": 1, "loop": 1} and d.checks == {"loop": 4} and d.criteria == ["divergence:loop=3"]
    assert d.kept_per_expert_call == pytest.approx(2 / 8)
    assert json.loads(json.dumps([r.to_dict() for r in rows]))[1]["reasons"] == {"cap": 1, "loop": 1}
    assert compare_criteria({"none": []})[0].kept_per_expert_call is None
    assert criteria_table(rows).row_count == 2
    assert quantile([1, 2, 3, 4], 0.5) == 2.5 and quantile([7], 0.9) == 7


def test_criteria_cli_reads_run_dirs(swe_repo, tmp_path: Path) -> None:
    for name, trajectories in (("uni", [_traj(1, switch=2, expert_calls=3, resolved=True, criterion="uniform:0-4")]),
                               ("div", [_traj(1, switch=1, expert_calls=2, resolved=False,
                                              criterion="divergence:loop=3", reason="loop")])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trajectories.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in trajectories))
    out = tmp_path / "rows.json"
    result = CliRunner().invoke(app, ["criteria", str(tmp_path / "uni"), str(tmp_path / "div"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "uni" in result.output and "div" in result.output
    rows = json.loads(out.read_text())
    assert [r["label"] for r in rows] == ["uni", "div"] and rows[0]["kept"] == 1 and rows[1]["kept"] == 0
    missing = CliRunner().invoke(app, ["criteria", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
