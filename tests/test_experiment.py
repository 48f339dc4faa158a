"""`oec experiment`: the paired statistics against hand-computed values, the repetition and masking hooks, and
the experiment end to end (scripted student, oracle expert, bundled tasks, training skipped)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.eval.stats import discordant, mcnemar_exact, paired_bootstrap, wilson_interval
from oec.models.base import ModelError
from oec.models.scripted import register_script
from oec.pipeline.config import ConfigError
from oec.tasks.bundled import BUNDLED_TASKS_FILE
from oec.tasks.loaders import load_tasks_strict


def test_wilson_known_values() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_exact_by_hand() -> None:
    # X ~ Bin(n, 1/2) over the discordant pairs; p = min(1, 2 P(X <= min(b, c)))
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # 0.0625
    assert mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 32)  # 0.375
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)  # 0.109375
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(0, 1) == 1.0
    assert mcnemar_exact(4, 1) == mcnemar_exact(1, 4)
    assert discordant([True, True, False, False], [True, False, True, True]) == (1, 2)


def test_paired_bootstrap_is_seeded_and_brackets_the_difference() -> None:
    a = [True] * 6 + [False] * 4
    b = [True] * 3 + [False] * 7  # A resolves 3 more of the same 10 pairs
    diff, low, high = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert diff == pytest.approx(0.3)
    assert paired_bootstrap(a, b, resamples=2000, seed=1) == (diff, low, high)  # reproducible
    assert low <= 0.3 <= high and low >= 0.0 and high <= 0.7
    assert paired_bootstrap([True] * 4, [False] * 4, resamples=500) == (1.0, 1.0, 1.0)  # no spread at all
    assert paired_bootstrap([], []) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------- end to end

LOOP = "```bash\nls\n```"
register_script("x-student", [], final=LOOP)  # loops: repetition over all turns drops its long prefixes
register_script("x-gives-up", ["<function=submit>\n</function>"])
_FLAKY = {"failures_left": 1}


def _flaky(messages):
    if _FLAKY["failures_left"] > 0:
        _FLAKY["failures_left"] -= 1
        raise ModelError("server", "HTTP 503 model server still loading")
    return "<function=submit>\n</function>"


register_script("x-flaky", [], final=_flaky)


def _tasks(path: Path, ids: list[str]) -> Path:
    rows = {t.instance_id: t for t in load_tasks_strict(BUNDLED_TASKS_FILE)}
    path.write_text("".join(rows[i].model_dump_json() + "\n" for i in ids))
    return path


def _config(tmp_path: Path, **extra: str) -> Path:
    train = _tasks(tmp_path / "train.jsonl", ["oec-bundled__textkit-1", "oec-bundled__textkit-2"])
    held_out = _tasks(tmp_path / "held.jsonl", ["oec-bundled__textkit-3", "oec-bundled__textkit-4"])
    config = tmp_path / "exp.toml"
    config.write_text(f"""
arms = ["base", "bc", "on-policy", "oec", "oec-unmasked", "oec-repetition-all", "oec-repetition-trained"]
[run]
out = "{tmp_path / 'exp'}"
seed = 1
[tasks]
train = "{train.name}"
held_out = "{held_out.name}"
[models]
student = "scripted:x-student"
expert = "oracle"
[collect]
switch = "uniform:0-4"
samples = 3
concurrency = 2
max_calls = 8
[filter]
max_repeat = 3
[train]
skip = true
[eval]
samples = 2
temperature = 0.7
max_calls = 6
bootstrap = 500
[eval_models]
bc = "oracle"
on-policy = "scripted:x-gives-up"
oec = "scripted:x-gives-up"
oec-unmasked = "scripted:x-flaky"
oec-repetition-all = "scripted:x-gives-up"
oec-repetition-trained = "scripted:x-gives-up"
{extra.get('tail', '')}
""")
    return config


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    from oec.experiment.config import load_experiment

    config = _config(tmp_path)
    config.write_text(config.read_text().replace("samples = 2\ntemperature = 0.7", "samples = 2"))
    with pytest.raises(ConfigError) as info:
        load_experiment(config)
    assert str(config) in str(info.value) and "'eval'" in str(info.value) and "not independent" in str(info.value)
    config.write_text(config.read_text().replace('arms = [', 'arms = ["dagger", '))
    with pytest.raises(ConfigError, match="field 'arms.0'"):
        load_experiment(config)


def test_samples_above_one_refused_at_temperature_zero(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(config.read_text().replace("samples = 2\ntemperature = 0.7", "samples = 1"))
    result = CliRunner().invoke(app, ["experiment", str(config), "--samples", "3"])
    assert result.exit_code == 2 and "not independent" in result.output


def _arm(result: dict, name: str) -> dict:
    return next(r for r in result["arms"] if r["arm"] == name)


@pytest.mark.slow
def test_experiment_end_to_end_then_resumes_and_retries(tmp_path: Path) -> None:
    _FLAKY["failures_left"] = 1
    config = _config(tmp_path)
    out = tmp_path / "exp"
    first = CliRunner().invoke(app, ["experiment", str(config)])
    assert first.exit_code == 0, first.output
    result = json.loads((out / "experiment.json").read_text())
    flaky = _arm(result, "oec-unmasked")
    assert flaky["eval"]["not_run"] == 1 and flaky["eval"]["n"] == 3  # failed to run: not counted as unresolved

    # budgets: equal kept trajectories across trained arms; the ablations differ in what they kept
    # the scripted student never resolves: rejection sampling keeps nothing, so on-policy is reported as having
    # no data (not trained, not evaluated, in no pair) and the other arms keep their budget
    on_policy = _arm(result, "on-policy")
    assert on_policy["data"]["collected"] == 6 and on_policy["data"]["kept"] == 0 and "eval" not in on_policy
    assert "nothing to train on" in on_policy["no_data"] and result["budget"]["no_data"] == ["on-policy"]
    assert not any("on-policy" in (p["a"], p["b"]) for p in result["pairs"])
    data = {r["arm"]: r["data"] for r in result["arms"] if r.get("data") and r["arm"] != "on-policy"}
    assert result["budget"]["mode"] == "trajectories"
    assert {d["used"] for d in data.values()} == {result["budget"]["trajectories"]} and result["budget"]["trajectories"] > 0
    assert data["oec-repetition-all"]["kept"] < data["oec-repetition-trained"]["kept"] == data["oec"]["collected"]
    assert data["bc"]["expert_calls_used"] > 0 and data["oec"]["expert_calls_collected"] > 0
    # masking: oec trains expert turns only, oec-unmasked the student's too
    def trained_sources(arm: str) -> set:
        rows = [json.loads(line) for line in (out / "arms" / arm / "sft.messages.jsonl").read_text().splitlines()]
        return {m["source"] for r in rows for m in r["messages"] if m.get("train")}
    assert trained_sources("oec") == {"expert"} and trained_sources("oec-unmasked") == {"student", "expert"}

    # evaluation: same held-out tasks and samples for every arm; process metrics beside the rate
    bc, oec, base = _arm(result, "bc"), _arm(result, "oec"), _arm(result, "base")
    assert bc["eval"]["resolved"] == 4 and oec["eval"]["resolved"] == 0 and base["eval"]["n"] == 4
    assert bc["process"]["edited_fix_file_rate"] == 1.0 and bc["process"]["submitted_rate"] == 1.0
    assert oec["process"]["edited_fix_file_rate"] == 0.0 and oec["process"]["valid_action_rate"] == 1.0
    assert base["process"]["submitted_rate"] == 0.0
    pair = next(p for p in result["pairs"] if (p["a"], p["b"]) == ("bc", "oec"))
    assert (pair["pairs"], pair["only_a"], pair["only_b"]) == (4, 4, 0)
    assert pair["mcnemar_p"] == pytest.approx(0.125) and pair["diff"] == 1.0

    # rerun: everything current is skipped; the rollout that failed to run is retried and now counted
    again = CliRunner().invoke(app, ["experiment", str(config)])
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output
    result = json.loads((out / "experiment.json").read_text())
    flaky = _arm(result, "oec-unmasked")
    assert flaky["eval"]["not_run"] == 0 and flaky["eval"]["n"] == 4
    attempts = (out / "arms" / "oec-unmasked" / "eval" / "attempts.jsonl").read_text().splitlines()
    assert len(attempts) == 1 and "model_error" in attempts[0]

    view = CliRunner().invoke(app, ["view", str(out)])
    assert view.exit_code == 0, view.output
    page = (out / "report.html").read_text()
    assert "oec-repetition-trained" in page and "McNemar exact p" in page and "data:image/png" in page
    assert "nothing to train on" in page and "supervised tokens" in page


# ---------------------------------------------------------------- the hooks the ablations use

def _oec_rollout():
    from oec.agent.actions import Action
    from oec.agent.history import Step
    from oec.collect.records import Trajectory

    def step(i: int, source: str, command: str) -> Step:
        return Step(index=i, source=source, model=source, format="text",
                    action=Action(tool="bash", arguments={"command": command}), observation="same")
    steps = [step(i, "student", "ls") for i in range(3)] + [step(3, "expert", "cat a.py"), step(4, "expert", "pytest")]
    return Trajectory(id="t/oec/0", instance_id="t", strategy="oec", sample_index=0, run_seed=0, seed=0,
                      switch_step=3, steps=steps, exit_reason="submitted")


def test_repetition_over_trained_turns_only_ignores_a_looping_student_prefix() -> None:
    from oec.data.filters import repetition

    rollout = _oec_rollout()
    assert not repetition(3).check(rollout).keep
    assert repetition(3, trained_only=True).check(rollout).keep
    on_policy = rollout.model_copy(update={"strategy": "on-policy"})  # every turn trained: all checked
    assert not repetition(3, trained_only=True).check(on_policy).keep


def test_unmasked_export_trains_the_student_turns_too() -> None:
    from oec.data.export import to_sft_record

    rollout = _oec_rollout()
    task = load_tasks_strict(BUNDLED_TASKS_FILE)[0].model_copy(update={"instance_id": "t"})
    masked, unmasked = to_sft_record(rollout, task), to_sft_record(rollout, task, train_student=True)
    trained = lambda r: [m.source for m in r.messages if m.role == "assistant" and m.train]  # noqa: E731
    assert trained(masked) == ["expert", "expert"]
    assert trained(unmasked) == ["student"] * 3 + ["expert"] * 2


def test_budgets_equal_trajectories_or_equal_expert_calls() -> None:
    from oec.collect.records import ModelUsage, Trajectory
    from oec.experiment.arms import ARMS
    from oec.experiment.config import ExperimentConfig
    from oec.experiment.runner import ArmData, apply_budget

    def rollouts(strategy: str, n: int, calls: int) -> list[Trajectory]:
        usage = {"expert": ModelUsage(spec="oracle", calls=calls)} if calls else {}
        return [Trajectory(id=f"t/{strategy}/{i}", instance_id="t", strategy=strategy, sample_index=i, run_seed=0,
                           seed=0, usage=usage, exit_reason="submitted") for i in range(n)]

    def arms() -> dict[str, ArmData]:
        return {"bc": ArmData(ARMS["bc"], rollouts("bc", 4, 5)), "oec": ArmData(ARMS["oec"], rollouts("oec", 6, 2)),
                "on-policy": ArmData(ARMS["on-policy"], rollouts("on-policy", 3, 0))}

    config = ExperimentConfig.model_validate({"tasks": {"held_out": "h.jsonl"}})
    data = arms()
    assert apply_budget(config, data) == {"mode": "trajectories", "trajectories": 3, "no_data": []}
    assert [len(d.used) for d in data.values()] == [3, 3, 3]
    config = ExperimentConfig.model_validate({"tasks": {"held_out": "h.jsonl"}, "budget": {"mode": "expert_calls"}})
    data = arms()
    assert apply_budget(config, data) == {"mode": "expert_calls", "expert_calls": 12, "no_data": []}  # oec's 6 x 2
    assert [len(d.used) for d in data.values()] == [2, 6, 3]  # bc: 2 x 5 <= 12; on-policy costs none

    # a weak base student resolves nothing, so rejection sampling keeps nothing: that arm has no data, and the
    # others are not cut to zero for it
    for mode, key in (("trajectories", "trajectories"), ("expert_calls", "expert_calls")):
        config = ExperimentConfig.model_validate({"tasks": {"held_out": "h.jsonl"}, "budget": {"mode": mode}})
        data = arms()
        data["on-policy"] = ArmData(ARMS["on-policy"], [])
        budget = apply_budget(config, data)
        assert budget["no_data"] == ["on-policy"] and budget[key] > 0
        assert len(data["bc"].used) > 0 and len(data["oec"].used) > 0 and data["on-policy"].used == []


def test_shipped_experiment_configs_load() -> None:
    """configs/*.toml are what the README tells users to run: each must validate, with its task paths resolved
    next to the config."""
    from oec.experiment.config import load_experiment

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))
    assert {c.name for c in configs} >= {"miniature-cpu.toml", "experiment-gpu.toml"}
    for path in configs:
        config = load_experiment(path)
        assert config.tasks.held_out.is_absolute() and config.tasks.held_out.name == "held-out.jsonl"
        # the run's folder too: `../runs/...` is the repository's runs/, not one above the working directory
        out = Path(os.path.normpath(config.run.out))
        assert out.is_relative_to(Path(os.path.normpath(path.parent.parent)) / "runs"), config.run.out
        assert "base" in config.arms and "oec" in config.arms and "bc" in config.arms


def test_arms_and_held_out_overrides(tmp_path: Path) -> None:
    """--arms runs a subset (eval_models of the others dropped) and --held-out evaluates on another split, the
    way the miniature is tuned on validation tasks and reported on held-out ones."""
    config = _config(tmp_path)
    validation = _tasks(tmp_path / "validation.jsonl", ["oec-bundled__rangeset-1"])
    out = tmp_path / "quick"
    result = CliRunner().invoke(app, ["experiment", str(config), "--arms", "base,bc", "--held-out", str(validation),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    done = json.loads((out / "experiment.json").read_text())
    assert [r["arm"] for r in done["arms"]] == ["base", "bc"] and done["held_out"].endswith("tasks-held-out.jsonl")
    assert [json.loads(line)["instance_id"] for line in (out / "tasks-held-out.jsonl").read_text().splitlines()] \
        == ["oec-bundled__rangeset-1"]
    assert _arm(done, "bc")["eval"]["resolved"] == 2  # the oracle, 2 samples
    bad = CliRunner().invoke(app, ["experiment", str(config), "--arms", "base,dagger", "--out", str(out)])
    assert bad.exit_code == 2 and "dagger" in bad.output
