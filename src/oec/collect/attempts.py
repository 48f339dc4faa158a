"""Rollouts that failed to run: recorded with their detail, retried on the next run, never scored.

A rollout that ends because the infrastructure failed (the model server, the
sandbox or container, the grader) says nothing about the model: counting it
as unresolved would lower a resolve rate for a server that was still loading
or an API key that was wrong. So such a rollout is not written to
trajectories.jsonl (the record of what ran) but to attempts.jsonl, one line per
failed attempt with what failed. A rerun of the same command retries exactly
those rollouts, up to `max_attempts` per rollout; every attempt stays on
record. Filter, export, eval and the report read trajectories.jsonl, so they
only ever see rollouts that ran; they count the failed ones from here.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from oec.appendlog import AppendLog
from oec.collect.records import Trajectory

ATTEMPTS = "attempts.jsonl"
#: exit reasons that mean the rollout could not run, whatever the model would have done
#: ("error": the rollout's machinery itself failed, e.g. a worker that could not load the model)
INFRA_EXIT_REASONS = frozenset({"model_error", "env_error", "grade_error", "error"})
DEFAULT_MAX_ATTEMPTS = 3
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")


def failed_to_run(trajectory: Trajectory) -> bool:
    """Whether the rollout ended because the infrastructure failed (not because of anything the model did)."""
    return trajectory.exit_reason in INFRA_EXIT_REASONS


class Attempt(BaseModel):
    """One failed attempt of one rollout."""

    id: str
    instance_id: str
    strategy: str
    sample_index: int
    attempt: int  # 1 for the first failure of this rollout
    exit_reason: str  # model_error | env_error | grade_error | error
    error_kind: str | None = None  # model errors: rate_limit, server, timeout, connection, auth, ...
    error: str | None = None
    http_status: int | None = None
    steps: int = 0  # how far it got
    at: str = ""

    @classmethod
    def of(cls, trajectory: Trajectory, attempt: int) -> "Attempt":
        error = trajectory.error or ""
        kind = error.split(":", 1)[0].strip() if trajectory.exit_reason == "model_error" and ":" in error else None
        status = _HTTP_STATUS.search(error)
        return cls(id=trajectory.id, instance_id=trajectory.instance_id, strategy=trajectory.strategy,
                   sample_index=trajectory.sample_index, attempt=attempt, exit_reason=trajectory.exit_reason,
                   error_kind=kind, error=error or None, http_status=int(status.group(1)) if status else None,
                   steps=len(trajectory.steps), at=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return f"{self.exit_reason} ({self.error or 'no detail'})"


class AttemptLog:
    """attempts.jsonl of a run directory: append-only, each line whole and durable before the next."""

    def __init__(self, folder: Path) -> None:
        self.log = AppendLog(folder / ATTEMPTS)
        self.path = self.log.path

    def read(self) -> list[Attempt]:
        """Every recorded attempt; a torn last line (a killed writer) is skipped: that attempt is not counted."""
        return self.log.read(Attempt.model_validate_json)

    def counts(self) -> Counter[str]:
        """Failed attempts per rollout id."""
        return Counter(a.id for a in self.read())

    def append(self, trajectory: Trajectory, attempt: int) -> Attempt:
        record = Attempt.of(trajectory, attempt)
        self.log.append(record.model_dump_json())
        return record


def not_run(folder: Path, done: set[str]) -> dict[str, Attempt]:
    """Rollouts of a run directory that failed every attempt so far: id -> its latest attempt."""
    latest: dict[str, Attempt] = {}
    for attempt in AttemptLog(folder).read():
        if attempt.id not in done:
            latest[attempt.id] = attempt
    return latest


def failure_summary(attempts: list[Attempt], limit: int = 3) -> str:
    """What failed, most common first: 'model_error: connection: ... (x12)'."""
    counts = Counter(a.describe() for a in attempts)
    return "; ".join(f"{text} (x{n})" if n > 1 else text for text, n in counts.most_common(limit))
