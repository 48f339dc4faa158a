"""Who acts when: strategies (bc, on-policy, oec) and the switch samplers of OEC.

A sampler is typed and parsed from a short spec; never code from a string.
  uniform:A-B  switch after k student calls, k ~ U{A..B} (the paper: uniform:0-30)
  fixed:K      switch after exactly K student calls
  tokens:N     switch once the student has used N tokens (prompt + completion, summed over its calls)
  cost:USD     switch once the student has cost USD dollars
  divergence:DETECTORS[;min=A,max=B]
               switch when a detector sees the student going off course (see oec.collect.divergence)
k = 0 is a pure expert rollout. A student that submits before its switch gives a pure student rollout.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from oec.collect.records import Firing

Strategy = Literal["bc", "on-policy", "oec"]
STRATEGIES: tuple[Strategy, ...] = ("bc", "on-policy", "oec")


@dataclass
class StudentProgress:
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


class SwitchSampler(Protocol):
    spec: str

    def plan(self, rng: random.Random) -> int | None:
        """The switch step drawn for this rollout, when it is known up front (else None)."""

    def should_switch(self, progress: StudentProgress, planned: int | None, firing: Firing | None = None) -> bool:
        """Whether the expert takes over now; `firing` is the rollout's first divergence firing, if any
        (only divergence samplers read it)."""


@dataclass(frozen=True)
class UniformSwitch:
    low: int
    high: int

    @property
    def spec(self) -> str:
        return f"uniform:{self.low}-{self.high}"

    def plan(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    def should_switch(self, progress: StudentProgress, planned: int | None, firing: Firing | None = None) -> bool:
        return planned is not None and progress.calls >= planned


@dataclass(frozen=True)
class FixedSwitch:
    step: int

    @property
    def spec(self) -> str:
        return f"fixed:{self.step}"

    def plan(self, rng: random.Random) -> int:
        return self.step

    def should_switch(self, progress: StudentProgress, planned: int | None, firing: Firing | None = None) -> bool:
        return progress.calls >= self.step


@dataclass(frozen=True)
class TokenSwitch:
    tokens: int

    @property
    def spec(self) -> str:
        return f"tokens:{self.tokens}"

    def plan(self, rng: random.Random) -> None:
        return None

    def should_switch(self, progress: StudentProgress, planned: int | None, firing: Firing | None = None) -> bool:
        return progress.tokens >= self.tokens


@dataclass(frozen=True)
class CostSwitch:
    usd: float

    @property
    def spec(self) -> str:
        return f"cost:{self.usd:g}"

    def plan(self, rng: random.Random) -> None:
        return None

    def should_switch(self, progress: StudentProgress, planned: int | None, firing: Firing | None = None) -> bool:
        return progress.cost_usd >= self.usd


def parse_switch(spec: str) -> SwitchSampler:
    """Parse a switch sampler spec; ValueError says what forms exist."""
    text = spec.strip().lower()
    forms = "uniform:A-B, fixed:K, tokens:N, cost:USD, divergence:DETECTORS[;min=A,max=B]"
    if text.startswith("divergence"):
        from oec.collect.divergence import parse_divergence

        return parse_divergence(spec)
    if m := re.fullmatch(r"uniform:(\d+)-(\d+)", text):
        low, high = int(m.group(1)), int(m.group(2))
        if low > high:
            raise ValueError(f"--switch {spec}: range start {low} is after its end {high}")
        return UniformSwitch(low, high)
    if m := re.fullmatch(r"fixed:(\d+)", text):
        return FixedSwitch(int(m.group(1)))
    if m := re.fullmatch(r"tokens:(\d+)", text):
        return TokenSwitch(int(m.group(1)))
    if m := re.fullmatch(r"cost:(\d+(?:\.\d*)?|\.\d+)", text):
        return CostSwitch(float(m.group(1)))
    raise ValueError(f"--switch {spec!r}: not a switch sampler (forms: {forms})")


def switch_bound(sampler: SwitchSampler) -> tuple[int, int] | None:
    """(earliest, latest) number of student calls at which `sampler` can hand over, when known up front.

    None for samplers that depend on what the student spends (tokens, cost) or on divergence with no `max`:
    for them the student's call cap is the last point of hand-over (see `Episode.switch_due`).
    """
    if isinstance(sampler, UniformSwitch):
        return sampler.low, sampler.high
    if isinstance(sampler, FixedSwitch):
        return sampler.step, sampler.step
    max_step = getattr(sampler, "max_step", None)
    if max_step is not None:
        return int(getattr(sampler, "min_step", 0)), int(max_step)
    return None


def check_switch_fits(sampler: SwitchSampler, *, max_calls: int, max_student_calls: int | None,
                      max_steps: int) -> None:
    """Refuse a switch the caps would cut off, before any rollout runs (a ValueError naming the flags).

    Why: a switch drawn after the student's last allowed call never happens; the rollout would end at the
    cap with no expert turn, so an OEC run would silently hold fewer (and shorter-horizon) corrections than
    its spec says, biased toward early switches.
    """
    bound = switch_bound(sampler)
    if bound is None:
        return
    _, latest = bound
    cap = min(max_calls, max_student_calls) if max_student_calls is not None else max_calls
    cap_flags = (f"--max-student-calls {max_student_calls}" if max_student_calls is not None and
                 max_student_calls <= max_calls else f"--max-calls {max_calls}")
    if latest > cap:
        raise ValueError(
            f"--switch {sampler.spec} can hand over after as many as {latest} student calls, but {cap_flags} "
            f"lets the student make only {cap}: those rollouts would end at the cap with no switch. "
            f"Lower the switch (at most {cap}) or raise {cap_flags.split()[0]}")
    if latest >= max_steps:
        raise ValueError(
            f"--switch {sampler.spec} can hand over after as many as {latest} student steps, but --max-steps "
            f"{max_steps} ends the rollout by then: the expert would never act. Lower the switch (below "
            f"{max_steps}) or raise --max-steps")

