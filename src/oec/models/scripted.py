"""A model that replays a script, so agent, collect and data tests need no LLM.

Specs: ``scripted:NAME`` plays a script registered in-process with
`register_script`; ``scripted:@path.json`` a JSON list of replies (or an
object ``{"replies": [...], "final": ..., "native_tools": ...}``);
``scripted:@path.jsonl`` one reply per line. A reply is a string (a
text-format model's raw output) or ``{"text": ..., "tool_calls": [{"name":
..., "arguments": {...} or "raw JSON string", "id": ...}], "usage": {...},
"delay_s": ..., "block_s": ...}`` (the last two: seconds to wait, or to hold a
thread, before answering).
In-process scripts may also hold a `Completion`, an exception to raise, or a
callable ``f(messages) -> reply``.

Each rollout (`ScriptedProvider.for_task`) gets a fresh cursor and records
every message list it was called with in `ScriptedModel.calls`, so tests can
assert what the model saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

from oec.models.base import Completion, Message, ModelError, ToolCall, ToolSpec, Usage
from oec.models.openai_backend import parse_tool_arguments
from oec.models.pricing import cost_usd
from oec.models.registry import ModelOptions

Reply = Union[str, dict, Completion, BaseException, Callable[[list[Message]], Any]]

_SCRIPTS: dict[str, "Script"] = {}


class Script:
    """Replies in order, what to answer after the last one, and the tool mode."""

    def __init__(self, replies: list[Reply], *, final: Reply | None = None, native_tools: bool | None = None) -> None:
        self.replies = list(replies)
        self.final = final
        self.native_tools = native_tools if native_tools is not None else any(
            isinstance(r, dict) and r.get("tool_calls") for r in self.replies)


def register_script(name: str, steps: list[Reply], *, final: Reply | None = None,
                    native_tools: bool | None = None) -> None:
    """Make ``scripted:NAME`` play `steps`; `final` answers every call after them (default: raise).

    `native_tools` defaults to True when any step has tool calls.
    """
    _SCRIPTS[name] = Script(steps, final=final, native_tools=native_tools)


def load_script(path: str | Path) -> Script:
    """A script from a .json file (list, or object with "replies") or a .jsonl file (a reply per line)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"script file {str(path)!r} not found")
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            return Script([json.loads(line) for line in text.splitlines() if line.strip()])
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"script file {str(path)!r} is not valid JSON: {exc}") from exc
    if isinstance(data, list):
        return Script(data)
    if isinstance(data, dict) and isinstance(data.get("replies"), list):
        return Script(data["replies"], final=data.get("final"), native_tools=data.get("native_tools"))
    raise ValueError(f"script file {str(path)!r} must hold a list of replies or {{\"replies\": [...]}}")


async def _pause(reply: dict) -> None:
    """A reply's ``delay_s`` (waits like a remote server) and ``block_s`` (holds a worker thread like a
    local model's generation, which nothing can interrupt): timing for crash and interrupt tests."""
    if reply.get("delay_s"):
        await asyncio.sleep(float(reply["delay_s"]))
    if reply.get("block_s"):
        await asyncio.to_thread(time.sleep, float(reply["block_s"]))


def _rough_tokens(text: str) -> int:
    """A deterministic stand-in for token counts (~4 characters a token) so limits can be tested."""
    return (len(text) + 3) // 4


class ScriptedModel:
    """One rollout's view of a script: replies in order, then `final`."""

    def __init__(self, script: Script, name: str = "scripted", options: ModelOptions | None = None) -> None:
        self.script = script
        self.name = name
        self.options = options or ModelOptions()
        self.native_tools = script.native_tools if self.options.native_tools is None else self.options.native_tools
        self.cursor = 0
        self.calls: list[list[Message]] = []
        self.tools_seen: list[list[ToolSpec] | None] = []

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> Completion:
        self.calls.append([m.model_copy(deep=True) for m in messages])
        self.tools_seen.append(tools)
        if self.cursor < len(self.script.replies):
            reply = self.script.replies[self.cursor]
            self.cursor += 1
        elif self.script.final is not None:
            reply = self.script.final
        else:
            raise ModelError("other", f"script exhausted after {len(self.script.replies)} replies")
        if callable(reply) and not isinstance(reply, (BaseException, type)):
            reply = reply(messages)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, dict):
            await _pause(reply)
        return self._completion(reply, messages)

    def _completion(self, reply: Any, messages: list[Message]) -> Completion:
        if isinstance(reply, Completion):
            return reply.model_copy(deep=True)
        if isinstance(reply, str):
            reply = {"text": reply}
        if not isinstance(reply, dict):
            raise ModelError("bad_response", f"script reply must be a string or an object, got {reply!r}")
        calls = []
        for i, tc in enumerate(reply.get("tool_calls") or []):
            args, error = parse_tool_arguments(tc.get("arguments"))
            calls.append(ToolCall(id=tc.get("id") or f"call_{len(self.calls)}_{i}", name=tc["name"],
                                  arguments=args, parse_error=error))
        text = reply.get("text") or ""
        usage = reply.get("usage") or {}
        prompt = usage.get("prompt_tokens", sum(_rough_tokens(m.content) for m in messages))
        out = usage.get("completion_tokens", _rough_tokens(text + json.dumps([c.arguments for c in calls])))
        cost = usage.get("cost_usd", cost_usd(self.name, prompt, out, self.options.price_in_per_mtok,
                                              self.options.price_out_per_mtok))
        return Completion(text=text, tool_calls=calls, model=self.name,
                          usage=Usage(prompt_tokens=prompt, completion_tokens=out, cost_usd=cost),
                          finish_reason="tool_calls" if calls else "stop")


class ScriptedProvider:
    """Hands each rollout a fresh `ScriptedModel`; keeps them in `models` for tests to inspect."""

    def __init__(self, spec: str, script: Script, options: ModelOptions | None = None) -> None:
        self.spec = spec
        self.script = script
        self.options = options or ModelOptions()
        self.models: list[ScriptedModel] = []

    @classmethod
    def from_spec(cls, model: str, options: ModelOptions | None = None) -> "ScriptedProvider":
        """`model` is ``NAME`` (registered) or ``@path.json`` / ``@path.jsonl``."""
        if model.startswith("@"):
            script = load_script(model[1:])
        elif model in _SCRIPTS:
            script = _SCRIPTS[model]
        else:
            known = ", ".join(sorted(_SCRIPTS)) or "none"
            raise ValueError(f"model spec 'scripted:{model}': no script named {model!r} (registered: {known}); "
                             "register_script() it or use scripted:@path.json")
        return cls(f"scripted:{model}", script, options)

    def for_task(self, task: Any) -> ScriptedModel:
        model = ScriptedModel(self.script, name=self.spec, options=self.options)
        self.models.append(model)
        return model
