"""The SFT record: a rollout rendered as the STUDENT sees it, each assistant turn flagged train or not.

Masks are derived from each step's recorded source, never from a separate
switch index: OEC rollouts train on expert turns only (the student's turns
are context), BC and on-policy rollouts train on every valid turn.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SFT_SCHEMA_VERSION = 1


class SFTMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    train: bool | None = Field(default=None, description="assistant turns only: is this turn supervised")
    source: Literal["student", "expert"] | None = Field(default=None, description="assistant turns: who wrote it")
    tool_calls: list[dict] = Field(default_factory=list, description="native-format students: OpenAI-style calls")
    tool_call_id: str | None = None
    format_error: bool = Field(default=False, description="assistant turns: the reply held no valid action (never trained)")


class SFTRecord(BaseModel):
    schema_version: int = SFT_SCHEMA_VERSION
    id: str  # = the trajectory id
    instance_id: str
    strategy: str
    switch_step: int | None = None
    student_format: Literal["text", "native"] = "text"
    messages: list[SFTMessage]
    sample_index: int | None = None
    format_error_turns: int = Field(default=0, description="assistant turns without a valid action, kept as context")

    @property
    def trained_turns(self) -> int:
        return sum(bool(m.train) for m in self.messages)

    @property
    def assistant_turns(self) -> int:
        return sum(m.role == "assistant" for m in self.messages)

    @property
    def masked_turns(self) -> int:
        return self.assistant_turns - self.trained_turns
