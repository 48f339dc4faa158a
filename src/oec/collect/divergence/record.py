"""What a divergence rollout's trajectory records: why the expert took over, and what the checks cost."""

from __future__ import annotations

from oec.collect.divergence.monitor import DivergenceMonitor
from oec.collect.episode import Episode
from oec.collect.records import Firing


def switch_record(episode: Episode) -> tuple[Firing | None, dict[str, int]]:
    """The firing (or "cap" when the cap handed over with none) and the checks; nothing for other samplers.

    A firing is recorded even when the switch never came (the student submitted before `min`), so the
    record says what was seen; `switch_step` says whether the expert acted.
    """
    monitor = episode.observer
    if not isinstance(monitor, DivergenceMonitor):
        return None, {}
    firing = episode.firing
    if firing is None and episode.switch_step is not None:
        firing = _cap_firing(episode.switch_step, monitor.switch.max_step, episode.call_cap("student"))
    return firing, monitor.checks()


def _cap_firing(switch_step: int, max_step: int | None, student_cap: int) -> Firing:
    """The record of a hand-over no detector asked for: the spec's `max`, or the student's call cap when
    that came first (see `Episode.switch_due`)."""
    cap = student_cap if max_step is None or max_step > student_cap else max_step
    return Firing(detector="cap", step=switch_step, evidence={"max": cap},
                  reason=f"no detector fired in {switch_step} student steps; the cap (max={cap}) handed over")
