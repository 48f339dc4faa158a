"""The trajectory record: one JSON line per finished rollout (schema-versioned, append-only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from oec.agent.history import Step
from oec.grading.grader import GradeResult

SCHEMA_VERSION = 1


class ModelUsage(BaseModel):
    spec: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0


class Firing(BaseModel):
    """Why the expert took over a `divergence` rollout: the detector that fired, the index of the student step
    after which it fired, what it saw, and a sentence for people. When no detector fired by the cap, detector
    is "cap" and step is the switch step the cap imposed."""

    detector: str
    step: int
    evidence: dict[str, Any] = Field(default_factory=dict)
    reason: str


class Trajectory(BaseModel):
    schema_version: int = SCHEMA_VERSION
    id: str
    instance_id: str
    strategy: str
    sample_index: int
    run_seed: int
    seed: int = Field(description="the rollout's own seed, derived from (run_seed, instance, strategy, sample)")
    student: str | None = None
    expert: str | None = None
    switch_criterion: str | None = None
    planned_switch: int | None = Field(default=None, description="the switch step drawn up front, if any")
    switch_step: int | None = Field(
        default=None, description="index of the first expert step = student steps before it; None if the expert never acted"
    )
    switch_reason: Firing | None = Field(
        default=None, description="divergence switching: the detector that fired (or 'cap'); None when none did")
    divergence_checks: dict[str, int] = Field(
        default_factory=dict, description="divergence switching: how often each detector ran (judge: expert calls)")
    steps: list[Step] = Field(default_factory=list)
    patch: str = ""
    reward: GradeResult | None = None
    usage: dict[str, ModelUsage] = Field(default_factory=dict)
    exit_reason: str
    error: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    started_at: str = ""

    @property
    def resolved(self) -> bool:
        return bool(self.reward and self.reward.resolved)


def trajectory_id(instance_id: str, strategy: str, sample_index: int) -> str:
    return f"{instance_id}/{strategy}/{sample_index}"
