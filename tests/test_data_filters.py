"""Filters over trajectories: each rule's verdict, and the report's attribution to the first rule that drops."""

from __future__ import annotations

import pytest

from oec.agent.actions import Action
from oec.agent.formats import render_text
from oec.agent.history import Step
from oec.collect.records import Trajectory
from oec.data.filters import (
    ExitReasons,
    MaxSteps,
    Repetition,
    Resolved,
    RewardHack,
    apply_filters,
    default_filters,
    exit_reasons,
    max_steps,
    repetition,
    resolved,
)
from oec.grading.grader import GradeResult


def bash(command: str) -> Action:
    return Action(tool="bash", arguments={"command": command})


def make_step(index: int, source: str, action: Action | None, observation: str = "") -> Step:
    fmt = "text" if source == "student" else "native"
    raw = "garbage" if action is None else (render_text("", action) if fmt == "text" else "")
    return Step(index=index, source=source, model=source, format=fmt, raw_text=raw, action=action,
                format_error=None if action is not None else "no action", observation=observation)


def make_trajectory(actions: list[tuple[str, Action | None, str]], *, resolved_: bool = True, strategy: str = "oec",
                    exit_reason: str = "submitted", sample: int = 0) -> Trajectory:
    steps = [make_step(i, src, act, obs) for i, (src, act, obs) in enumerate(actions)]
    return Trajectory(
        id=f"x__y-1/{strategy}/{sample}", instance_id="x__y-1", strategy=strategy, sample_index=sample, run_seed=0,
        seed=0, steps=steps, exit_reason=exit_reason,
        reward=GradeResult(instance_id="x__y-1", resolved=resolved_, status="resolved" if resolved_ else "unresolved"),
    )


def test_resolved_keeps_resolved_and_says_why_it_drops() -> None:
    assert Resolved().check(make_trajectory([], resolved_=True)).keep
    verdict = Resolved().check(make_trajectory([], resolved_=False))
    assert not verdict.keep and "unresolved" in verdict.reason
    ungraded = make_trajectory([]).model_copy(update={"reward": None})
    assert Resolved().check(ungraded).reason == "not graded"


def test_repetition_drops_three_in_a_row_but_keeps_two() -> None:
    rule = repetition(3)
    two = make_trajectory([("student", bash("ls"), "a"), ("student", bash("ls "), "b"), ("expert", bash("pwd"), "/")])
    three = make_trajectory([("student", bash("ls"), "a"), ("student", bash("ls"), "b"), ("student", bash(" ls"), "c")])
    assert rule.check(two).keep
    verdict = rule.check(three)
    assert not verdict.keep and "3 times in a row" in verdict.reason and "from step 0" in verdict.reason


def test_repetition_counts_runs_across_sources_and_whitespace() -> None:
    # the normalized action folds whitespace; a student run continued by the expert is still one run
    t = make_trajectory([("student", bash("cat  a.py"), "1"), ("expert", bash("cat a.py"), "2"),
                         ("expert", bash("cat a.py\n"), "3")])
    assert not repetition(3).check(t).keep
    assert repetition(3, sources=["expert"]).check(t).keep


def test_repetition_drops_recurring_action_observation_pairs_anywhere() -> None:
    steps = [("student", bash("pytest"), "1 failed"), ("student", bash("ls"), "x"),
             ("student", bash("pytest"), "1 failed"), ("expert", bash("cat f"), "y"),
             ("expert", bash("pytest"), "1 failed")]
    verdict = repetition(3).check(make_trajectory(steps))
    assert not verdict.keep and "same observation 3 times" in verdict.reason
    # the same action with different observations is progress, not a loop
    changed = [(s, a, f"{o} {i}") if a.arguments.get("command") == "pytest" else (s, a, o)
               for i, (s, a, o) in enumerate(steps)]
    assert repetition(3).check(make_trajectory(changed)).keep
    # two recurrences are allowed
    assert repetition(3).check(make_trajectory(steps[:3])).keep


def test_repetition_catches_a_repeated_broken_reply() -> None:
    t = make_trajectory([("student", None, "")] * 3)
    assert not repetition(3).check(t).keep


def test_repetition_rejects_a_threshold_that_drops_everything() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        repetition(1)


def test_max_steps_and_exit_reasons() -> None:
    t = make_trajectory([("student", bash(f"echo {i}"), str(i)) for i in range(5)], exit_reason="step_limit")
    assert max_steps(5).check(t).keep
    assert not max_steps(4).check(t).keep
    verdict = exit_reasons({"submitted"}).check(t)
    assert not verdict.keep and "step_limit" in verdict.reason
    assert exit_reasons(["submitted", "step_limit"]).check(t).keep


def test_report_charges_the_first_rule_that_drops_and_counts_per_strategy() -> None:
    loop = [("student", bash("ls"), "a")] * 3
    trajectories = [
        make_trajectory([("expert", bash("ls"), "a")], strategy="bc", sample=0),  # kept
        make_trajectory(loop, strategy="oec", sample=1, resolved_=False),  # unresolved AND loops -> resolved
        make_trajectory(loop, strategy="oec", sample=2),  # loops -> repetition
        make_trajectory(loop, strategy="on-policy", sample=3, exit_reason="call_limit"),  # -> repetition (first)
        make_trajectory([("student", bash("ls"), "a")], strategy="on-policy", sample=4, exit_reason="call_limit"),
        make_trajectory([("expert", bash("ls"), "a")], strategy="oec", sample=5),  # kept
    ]
    rules = [resolved(), repetition(3), max_steps(10), exit_reasons({"submitted"})]
    report = apply_filters(trajectories, rules)

    assert [t.sample_index for t in report.kept] == [0, 5]
    assert report.dropped == {"resolved": 1, "repetition": 2, "max_steps": 0, "exit_reason": 1}
    assert report.dropped_per_strategy == {"resolved": {"oec": 1}, "repetition": {"oec": 1, "on-policy": 1},
                                           "max_steps": {}, "exit_reason": {"on-policy": 1}}
    assert report.kept_per_strategy == {"bc": 1, "oec": 1, "on-policy": 0}
    data = report.to_json()
    assert data["total"] == 6 and data["kept"] == 2
    assert [r["name"] for r in data["rules"]] == ["resolved", "repetition", "max_steps", "exit_reason"]
    assert {d["rule"] for d in data["drops"]} == {"resolved", "repetition", "exit_reason"}

    # order matters: with exit_reason first, the looping call_limit rollout is charged to it
    reordered = apply_filters(trajectories, [exit_reasons({"submitted"}), resolved(), repetition(3)])
    assert reordered.dropped == {"exit_reason": 2, "resolved": 1, "repetition": 1}


def test_rules_are_typed_values_and_not_repeated() -> None:
    assert isinstance(resolved(), Resolved) and isinstance(repetition(), Repetition)
    assert isinstance(max_steps(3), MaxSteps) and isinstance(exit_reasons(["submitted"]), ExitReasons)
    assert repetition(4).describe() == {"name": "repetition", "max_repeat": 4, "sources": ["expert", "student"]}
    with pytest.raises(ValueError, match="once"):
        apply_filters([], [resolved(), resolved()])


def _add(path: str) -> str:
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x = 1\n"


def test_reward_hack_drops_resolved_rollouts_that_touch_tests_and_counts_per_reason() -> None:
    fix = "diff --git a/pkg/core.py b/pkg/core.py\n--- a/pkg/core.py\n+++ b/pkg/core.py\n@@ -1 +1 @@\n-a\n+b\n"
    clean = make_trajectory([], strategy="bc", sample=0).model_copy(update={"patch": fix})
    with_test = make_trajectory([], sample=1).model_copy(update={"patch": fix + _add("tests/test_core.py")})
    with_conftest = make_trajectory([], sample=2).model_copy(update={"patch": fix + _add("conftest.py")})
    graded = make_trajectory([], sample=3).model_copy(update={"patch": fix})
    graded.reward.dropped = {"tests/helpers.py": "test file"}  # what the grader left out (it knew the task)
    refused = make_trajectory([], strategy="on-policy", sample=4, resolved_=False)
    refused.reward.status = "patch_refused"

    rule = RewardHack()
    assert rule.check(clean).keep
    verdict = rule.check(with_test)
    assert not verdict.keep and verdict.reason == "test file: tests/test_core.py"
    assert rule.check(with_conftest).reason == "test infrastructure: conftest.py"
    assert rule.check(graded).reason == "test file: tests/helpers.py"
    assert not rule.check(refused).keep

    report = apply_filters([clean, with_test, with_conftest, graded, refused], default_filters())
    assert [t.sample_index for t in report.kept] == [0]
    assert report.dropped == {"failed_to_run": 0, "resolved": 1, "reward_hack": 3, "repetition": 0}
    assert report.dropped_per_reason["reward_hack"] == {"test file": 2, "test infrastructure": 1}
