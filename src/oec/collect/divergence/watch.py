"""What a detector sees after a student step, and the protocol every detector keeps.

A detector is small and typed: it is set up once per rollout (`start`), looks at the rollout after each
student step (`check`, returning a `Firing` or None), and counts what it did (`checks`, `extra`) so the
trajectory can say what the switch cost.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from oec.agent.history import Step
from oec.agent.tools import Runner
from oec.collect.episode import Actor, Episode, EpisodeEnd
from oec.collect.records import Firing


class WatchedEnv(Runner, Protocol):
    """The rollout's environment as detectors use it: run a command, read the diff (both backends have both)."""

    def diff(self) -> str: ...


@dataclass
class Watch:
    """One look at the rollout after a student step: the episode, the env, and the diff read at most once."""

    episode: Episode
    env: WatchedEnv
    step: Step
    _diff: str | None = None

    async def diff(self) -> str:
        if self._diff is None:
            self._diff = await asyncio.to_thread(self.env.diff)
        return self._diff

    @property
    def student_steps(self) -> list[Step]:
        return [s for s in self.episode.steps if s.source == "student"]

    @property
    def calls(self) -> int:
        """Student calls so far (this step included)."""
        return self.episode.progress.calls


class Detector(Protocol):
    """`check` returns a Firing or None; `checks` counts the times it actually looked, `extra` its other
    counts for the record (errors, timeouts, ...)."""

    name: str
    checks: int
    extra: Counter[str]

    async def start(self, episode: Episode, env: WatchedEnv) -> None: ...

    async def check(self, watch: Watch) -> Firing | None: ...


@dataclass
class Counts:
    """The counters every detector keeps, and a `start` for detectors with nothing to set up."""

    checks: int = field(default=0, init=False)
    extra: Counter[str] = field(default_factory=Counter, init=False)

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        return None


def expert_for(expert: Actor | None, what: str) -> Actor:
    """The expert a detector asks; a rollout without one cannot run that detector, so it ends."""
    if expert is None:
        raise EpisodeEnd("model_error", f"divergence {what}: there is no expert to ask")
    return expert
