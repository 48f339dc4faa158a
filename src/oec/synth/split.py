"""Train / held-out split that keeps functions (or files) disjoint, so evaluation never rewards memorising one.

Tasks are grouped by (repo, file, function) or (repo, file) from their
`synth` metadata (rows without it are grouped by instance id); groups are
shuffled with the seed and dealt to the held-out set until it holds at least
the asked fraction of tasks. Every task of a group lands on the same side.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Literal

from oec.tasks.model import Task

__all__ = ["group_key", "split_tasks"]

SplitBy = Literal["function", "file"]


def group_key(task: Task, by: SplitBy) -> tuple[str, ...]:
    meta = (task.model_extra or {}).get("synth") or {}
    if not meta.get("file"):
        return (task.instance_id,)
    if by == "file":
        return (task.repo, meta["file"])
    return (task.repo, meta["file"], meta.get("function", ""))


def split_tasks(tasks: list[Task], held_out: float, *, by: SplitBy = "function",
                seed: int = 0) -> tuple[list[Task], list[Task]]:
    """(train, held_out), disjoint by `by`; held_out gets about `held_out` of the tasks (at least one group
    when there are two or more groups and the fraction is above zero)."""
    if not 0.0 <= held_out <= 1.0:
        raise ValueError(f"held-out fraction {held_out} is not between 0 and 1")
    groups: dict[tuple[str, ...], list[Task]] = defaultdict(list)
    for task in tasks:
        groups[group_key(task, by)].append(task)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = held_out * len(tasks)
    chosen: set[tuple[str, ...]] = set()
    count = 0
    for key in keys:
        if count >= target or len(chosen) == len(keys) - (1 if held_out < 1 else 0):
            break
        chosen.add(key)
        count += len(groups[key])
    train = [t for t in tasks if group_key(t, by) not in chosen]
    held = [t for t in tasks if group_key(t, by) in chosen]
    return train, held
