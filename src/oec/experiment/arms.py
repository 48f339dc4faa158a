"""The arms of the comparison: what data each one trains on, and how it is filtered and exported.

- base: the untrained student.
- bc: expert-only rollouts (behaviour cloning), every turn trained.
- on-policy: the student's own resolved rollouts (rejection sampling), every turn trained.
- oec: on-policy expert corrections, only the expert's turns trained; the config's repetition filter.
- oec-unmasked: the same rollouts, the student's turns trained too (what TRL's assistant_only_loss does).
- oec-repetition-all / oec-repetition-trained: the repetition filter over every turn vs only the trained
  (expert) turns, so a looping student prefix does or does not drop a rollout.

The oec arms share one collection (the same rollouts), so they differ only in the ablated factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ArmName = Literal["base", "bc", "on-policy", "oec", "oec-unmasked", "oec-repetition-all",
                  "oec-repetition-trained"]


@dataclass(frozen=True)
class Arm:
    name: str
    strategy: str | None  # the collection it trains on; None: not trained
    train_student_turns: bool = False
    repetition: Literal["config", "all", "trained"] = "config"

    @property
    def trained(self) -> bool:
        return self.strategy is not None


ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("base", None),
    Arm("bc", "bc"),
    Arm("on-policy", "on-policy"),
    Arm("oec", "oec"),
    Arm("oec-unmasked", "oec", train_student_turns=True),
    Arm("oec-repetition-all", "oec", repetition="all"),
    Arm("oec-repetition-trained", "oec", repetition="trained"),
)}
