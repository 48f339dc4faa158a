"""One rollout's detectors: set up before the first step, asked for a verdict after each student step."""

from __future__ import annotations

from collections import Counter

from oec.agent.history import Step
from oec.collect.divergence.registry import DETECTORS, ENTRIES
from oec.collect.divergence.switch import DivergenceSwitch
from oec.collect.divergence.watch import Detector, Watch, WatchedEnv
from oec.collect.episode import Actor, Episode, EpisodeEnd
from oec.collect.records import Firing


class DivergenceMonitor:
    """The episode's `StepObserver` for divergence switching: runs the detectors, cheapest first, and
    returns the first firing as its verdict. The episode keeps that firing and hands it to
    `DivergenceSwitch.should_switch`; once it has one it stops asking (no extra cost).

    A detector that raises (a sandbox hiccup, a model error) does not end the rollout: it is counted as
    ``<name>_failed`` and the others go on.
    """

    def __init__(self, switch: DivergenceSwitch, expert: Actor | None) -> None:
        self.switch = switch
        self.detectors: list[Detector] = [
            ENTRIES[name].make(value, expert) for name in DETECTORS if (value := switch.setting(name)) is not None]
        self.failed: Counter[str] = Counter()

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        """Set each detector up (the regression baseline runs here). A detector that cannot work with this
        expert ends the rollout with its reason (EpisodeEnd); one whose setup breaks is dropped and counted."""
        usable = []
        for detector in self.detectors:
            try:
                await detector.start(episode, env)
            except EpisodeEnd:
                raise
            except Exception:  # noqa: BLE001 - e.g. the sandbox failed the baseline run: go on without it
                self.failed[f"{detector.name}_failed"] += 1
                continue
            usable.append(detector)
        self.detectors = usable

    async def verdict(self, episode: Episode, step: Step, env: WatchedEnv) -> Firing | None:
        """The first detector to fire on the student's `step`, or None when all see it on course."""
        watch = Watch(episode, env, step)
        for detector in self.detectors:
            try:
                firing = await detector.check(watch)
            except EpisodeEnd:
                raise
            except Exception:  # noqa: BLE001 - a broken check is no evidence; the rollout goes on
                self.failed[f"{detector.name}_failed"] += 1
                continue
            if firing is not None:
                return firing
        return None

    def checks(self) -> dict[str, int]:
        """How often each detector looked, plus its error counts (for the trajectory's divergence_checks)."""
        counts: dict[str, int] = {d.name: d.checks for d in self.detectors}
        for detector in self.detectors:
            counts.update(detector.extra)
        counts.update(self.failed)
        return counts


def monitor_for(switch: object, expert: Actor | None) -> DivergenceMonitor | None:
    """The rollout's monitor when it switches on divergence, else None (other samplers need none)."""
    return DivergenceMonitor(switch, expert) if isinstance(switch, DivergenceSwitch) else None
