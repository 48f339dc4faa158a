"""`oracle` (privileged, the task's gold patch): an edit outside the fix's files, or a fix line undone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from oec.collect.divergence.watch import Counts, Watch, WatchedEnv
from oec.collect.episode import Episode
from oec.collect.records import Firing
from oec.grading.patch_files import PatchParseError, files_touched, parse_patch_files

def added_lines(patch: str) -> dict[str, set[str]]:
    """Per file, the stripped lines a unified diff adds that carry code (at least one letter or digit).

    Read through the project's one patch model (`oec.grading.patch_files`); a diff it cannot read adds
    nothing this detector could hold against the student.
    """
    try:
        changes = parse_patch_files(patch)
    except PatchParseError:
        return {}
    out: dict[str, set[str]] = {}
    for change in changes:
        lines = {text.strip() for text in change.added_lines if re.search(r"\w", text)}
        if lines:
            out.setdefault(change.path, set()).update(lines)
    return out


@dataclass
class OracleDetector(Counts):
    """Privileged (the task's gold patch): edits outside the files the fix touches, or a fix line undone.

    A gold-added line "undone" is one that was in the student's diff at an earlier check and is gone now.
    Off when the task has no gold patch. Runs only when the diff changed.
    """

    name = "oracle"
    gold_files: frozenset[str] = field(default=frozenset(), init=False)
    gold_added: dict[str, set[str]] = field(default_factory=dict, init=False)
    seen: dict[str, set[str]] = field(default_factory=dict, init=False)
    last_diff: str | None = field(default=None, init=False)

    async def start(self, episode: Episode, env: WatchedEnv) -> None:
        self.gold_files = frozenset(files_touched(episode.task.fix_patch))
        self.gold_added = added_lines(episode.task.fix_patch)

    async def check(self, watch: Watch) -> Firing | None:
        if not self.gold_files:
            return None
        diff = await watch.diff()
        if diff == self.last_diff:
            return None
        self.last_diff = diff
        self.checks += 1
        try:
            touched = files_touched(diff)
        except PatchParseError:  # a diff the parser cannot read names no file it could call stray
            touched = []
        stray = [f for f in touched if f not in self.gold_files]
        if stray:
            return Firing(detector=self.name, step=watch.step.index, evidence={"files": stray[:20]},
                          reason=f"edited {', '.join(stray[:3])}, which the gold patch does not touch")
        undone = self._undone(added_lines(diff))
        if undone:
            count = sum(len(v) for v in undone.values())
            return Firing(detector=self.name, step=watch.step.index, evidence={"undone": undone},
                          reason=f"removed {count} line(s) of the fix it had added, in {', '.join(undone)}")
        return None

    def _undone(self, now: dict[str, set[str]]) -> dict[str, list[str]]:
        """Per file, the gold lines seen in an earlier diff and missing from `now` (and remember what is seen)."""
        undone: dict[str, list[str]] = {}
        for path, gold in self.gold_added.items():
            present = gold & now.get(path, set())
            lost = self.seen.get(path, set()) - present
            if lost:
                undone[path] = sorted(lost)[:10]
            self.seen.setdefault(path, set()).update(present)
        return undone
