"""The one small interface every model backend speaks.

`complete(messages, tools)` takes chat messages (OpenAI-style roles, with
native tool calls where the model uses them) and returns a Completion: text,
tool calls, token usage, cost and latency. The agent renders the canonical
history into messages per model; backends never see the canonical form.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    #: set when the model's arguments were not valid JSON; the agent turns it into a format error
    parse_error: str | None = None


class Message(BaseModel):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)  # assistant turns of native-tool models
    tool_call_id: str | None = None  # tool turns: which call this answers
    name: str | None = None  # tool turns: the tool's name


class ToolSpec(BaseModel):
    """A tool offered to native function-calling models (JSON schema parameters)."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # None when the price of the model is unknown

    def __add__(self, other: "Usage") -> "Usage":
        cost = None if self.cost_usd is None and other.cost_usd is None else (self.cost_usd or 0) + (other.cost_usd or 0)
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens, cost_usd=cost)


class Completion(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""
    finish_reason: str | None = None


ModelErrorKind = Literal["rate_limit", "server", "timeout", "connection", "bad_response", "context_length", "auth", "other"]


class ModelError(RuntimeError):
    """A model call failed for good (after retries); `kind` becomes the rollout's exit reason detail."""

    def __init__(self, kind: ModelErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@runtime_checkable
class Model(Protocol):
    """What the episode loop calls. `native_tools` says whether it speaks function calling or text."""

    name: str
    native_tools: bool

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> Completion: ...
