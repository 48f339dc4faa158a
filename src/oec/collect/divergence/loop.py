"""`loop`: the same action (or action and observation) N times in a row."""

from __future__ import annotations

from dataclasses import dataclass

from oec.collect.divergence.watch import Counts, Watch
from oec.collect.records import Firing
from oec.data.filters import find_repetition


@dataclass
class LoopDetector(Counts):
    """The repetition filter's rule, applied while the student acts: loops are cut before they are paid for."""

    name = "loop"
    repeat: int = 3

    async def check(self, watch: Watch) -> Firing | None:
        self.checks += 1
        found = find_repetition(watch.student_steps, self.repeat)
        if found is None:
            return None
        evidence = {"kind": found.kind, "action": found.key[:200], "count": found.count, "first_step": found.first}
        return Firing(detector=self.name, step=watch.step.index, evidence=evidence, reason=found.describe())
