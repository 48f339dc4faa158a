"""Every detector in one table: its name, its spec parameter, how to build it, and what a check costs.

The table's order is the canonical order: specs are printed in it (a run's identity, so it never changes),
and it is the order the grammar lists. The monitor runs the detectors cheapest first, by `cost`, ties in
table order, so a firing skips the costly checks (a completion, a test run). Adding a detector is one
module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from oec.collect.divergence.errors import ErrorsDetector
from oec.collect.divergence.judge import JudgeDetector
from oec.collect.divergence.likelihood import LikelihoodDetector
from oec.collect.divergence.loop import LoopDetector
from oec.collect.divergence.oracle import OracleDetector
from oec.collect.divergence.regression import RegressionDetector
from oec.collect.divergence.watch import Detector
from oec.collect.episode import Actor

#: how a detector's spec value is read: a whole number >= `low`, a log-probability <= 0, or no value at all
Kind = Literal["count", "logprob", "flag"]

#: a detector's setting in a spec: a count or period, a log-probability, or True for a flag
Setting = int | float | bool

#: what one check costs, lowest first: read the history, read the diff, run tests, score, complete
HISTORY, DIFF, TESTS, SCORE, COMPLETION = range(5)


@dataclass(frozen=True)
class Entry:
    """One detector: `name=value` in a spec becomes `make(value, expert)` in a rollout."""

    name: str
    kind: Kind
    default: Setting
    make: Callable[[Any, Actor | None], Detector]
    cost: int
    letter: str = ""  # the value's name in the grammar (N, K)
    low: int = 0  # count: the smallest value

    @property
    def form(self) -> str:
        """The detector in the grammar, e.g. ``loop[=N>=2]``."""
        if self.kind == "flag":
            return self.name
        return f"{self.name}[=LOGPROB<=0]" if self.kind == "logprob" else f"{self.name}[={self.letter}>={self.low}]"

    def show(self, value: Setting) -> str:
        """The detector as a canonical spec prints it."""
        if self.kind == "flag":
            return self.name
        return f"{self.name}={value:g}" if self.kind == "logprob" else f"{self.name}={value}"


REGISTRY: tuple[Entry, ...] = (
    Entry("loop", "count", 3, lambda n, _: LoopDetector(repeat=n), HISTORY, "N", low=2),
    Entry("errors", "count", 3, lambda n, _: ErrorsDetector(limit=n), HISTORY, "N", low=1),
    Entry("regression", "count", 5, lambda k, _: RegressionDetector(every=k), TESTS, "K", low=1),
    Entry("judge", "count", 5, lambda k, expert: JudgeDetector(expert=expert, every=k), COMPLETION, "K", low=1),
    Entry("likelihood", "logprob", -4.0, lambda lp, expert: LikelihoodDetector(expert=expert, threshold=lp), SCORE),
    Entry("oracle", "flag", True, lambda _, __: OracleDetector(), DIFF),
)
ENTRIES: dict[str, Entry] = {e.name: e for e in REGISTRY}

#: detector names in the order they run after a step (cheap ones first: a firing skips the costly ones)
DETECTORS: tuple[str, ...] = tuple(e.name for e in sorted(REGISTRY, key=lambda e: e.cost))
