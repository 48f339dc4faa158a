"""The canonical history of a rollout and its rendering into each model's messages.

A Step records what happened once (who acted, what they wrote, the parsed
action, what the environment answered). `render` turns the same steps into a
text-format conversation for one model and a native tool-calling conversation
for another, so student and expert share one rollout.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from oec.agent.actions import Action
from oec.agent.formats import ActionFormat, render_native, render_text
from oec.agent.prompts import SYSTEM_PROMPTS, format_error_message, observation_message, task_prompt
from oec.models.base import Message, Usage
from oec.tasks.model import Task

Source = Literal["student", "expert"]


class Step(BaseModel):
    index: int
    source: Source
    model: str
    format: ActionFormat  # the format the acting model spoke
    raw_text: str = ""  # the model's reply text as written
    thought: str = ""
    action: Action | None = None  # None when the reply held no valid action
    format_error: str | None = None
    observation: str = ""
    exit_code: int | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0

    @property
    def call_id(self) -> str:
        return f"call_{self.index}"


def render(task: Task, steps: list[Step], fmt: ActionFormat, system_prompt: str | None = None) -> list[Message]:
    """The conversation a model speaking `fmt` sees after `steps`."""
    messages = [
        Message(role="system", content=system_prompt or SYSTEM_PROMPTS[fmt]),
        Message(role="user", content=task_prompt(task)),
    ]
    for step in steps:
        messages.extend(render_step(step, fmt))
    return messages


def render_step(step: Step, fmt: ActionFormat) -> list[Message]:
    """One step as an assistant turn plus the environment's answer, in `fmt`."""
    if step.action is None:  # the reply had no valid action: show it as written, then the error
        return [Message(role="assistant", content=step.raw_text),
                Message(role="user", content=format_error_message(step.format_error or "no action"))]
    if fmt == "text":
        text = step.raw_text if step.format == "text" and step.raw_text else render_text(step.thought, step.action)
        return [Message(role="assistant", content=text),
                Message(role="user", content=observation_message(step.observation))]
    return [
        Message(role="assistant", content=step.thought, tool_calls=[render_native(step.action, step.call_id)]),
        Message(role="tool", content=step.observation, tool_call_id=step.call_id, name=step.action.tool),
    ]
