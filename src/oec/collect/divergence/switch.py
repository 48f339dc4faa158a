"""The divergence sampler: a frozen value saying which detectors are on and when a firing may switch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oec.collect.divergence.registry import REGISTRY, Setting
from oec.collect.records import Firing
from oec.collect.schedules import StudentProgress


@dataclass(frozen=True)
class DivergenceSwitch:
    """Switch when a detector fires (after `min_step` student calls), or at `max_step` calls whatever happens.

    A detector is on when its setting is not None (`oracle`: True). Values: loop/errors a count, regression
    and judge a period in student steps, likelihood a mean log-probability threshold. Frozen and picklable:
    one value is shared by every rollout of a run (it travels to Ray workers); what a rollout has seen lives
    in its `DivergenceMonitor`, and its firing reaches `should_switch` as an argument.
    """

    loop: int | None = None
    errors: int | None = None
    regression: int | None = None
    judge: int | None = None
    likelihood: float | None = None
    oracle: bool = False
    min_step: int = 0
    max_step: int | None = None

    def setting(self, name: str) -> Setting | None:
        """A detector's setting; None (or False, for a flag) when it is off."""
        value = getattr(self, name)
        return None if value is None or value is False else value

    @property
    def detectors(self) -> tuple[str, ...]:
        """The detectors that are on, in canonical order."""
        return tuple(e.name for e in REGISTRY if self.setting(e.name) is not None)

    @property
    def spec(self) -> str:
        """The canonical spec: detectors in a fixed order, so equal samplers compare equal in run configs."""
        parts = [e.show(value) for e in REGISTRY if (value := self.setting(e.name)) is not None]
        options = ([f"min={self.min_step}"] if self.min_step else []) + (
            [f"max={self.max_step}"] if self.max_step is not None else [])
        return "divergence:" + ",".join(parts) + (";" + ",".join(options) if options else "")

    def plan(self, rng: Any) -> None:
        """Nothing is drawn up front: the switch step depends on what the student does."""

    def should_switch(self, progress: StudentProgress, planned: int | None, firing: Firing | None = None) -> bool:
        """Switch once a detector has fired (`firing`, the rollout's first), never before `min_step` student
        calls, and always by `max_step`."""
        if progress.calls < self.min_step:
            return False
        return firing is not None or (self.max_step is not None and progress.calls >= self.max_step)
