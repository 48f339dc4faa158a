"""The canonical action: a tool name and its arguments, whatever format the model spoke."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Action(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def normalized(self) -> str:
        """A stable string for repetition checks: whitespace-folded command or edit."""
        if self.tool == "bash":
            return "bash:" + " ".join(str(self.arguments.get("command", "")).split())
        parts = [f"{k}={' '.join(str(v).split())}" for k, v in sorted(self.arguments.items())]
        return f"{self.tool}:" + "|".join(parts)


class FormatError(ValueError):
    """The model's reply holds no valid action; the message is shown to the model as its observation."""
