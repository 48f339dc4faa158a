"""How one conversation is laid out for a local model's chat template, in either action format.

One function renders a history for inference (`oec.models.hf`) and for
training (`oec.train.masking`), so a student is trained on exactly the text it
is prompted with:

- text format: plain {role, content} turns; a tool result becomes a user turn
  ("Output of bash: ...") and native tool calls become JSON lines, so any
  template renders it;
- native format: the template's own tool-calling layout. Tools are passed as
  `tools=` (OpenAI function schemas), assistant turns carry structured
  `tool_calls`, results are `tool` turns. Only templates that render tools can
  do this (`supports_tools`), and the model's reply is read back with the
  parser for the template's call syntax (`ToolCallStyle`): Hermes/Qwen's
  ``<tool_call>{json}</tool_call>`` blocks, or Llama 3's bare JSON object
  (``{"name": ..., "parameters": {...}}``, optionally after ``<|python_tag|>``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from oec.agent.tools import TOOLS
from oec.models.base import Message, ToolCall

ToolCallStyle = Literal["hermes", "llama3_json"]

_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"


class ChatFormatError(ValueError):
    """A chat template that cannot render (or a reply that cannot be read in) the requested format."""


def tool_schemas() -> list[dict[str, Any]]:
    """The agent's tools as OpenAI function schemas: what `tools=` hands a chat template (and OpenAI exports)."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in TOOLS]


def supports_tools(template: str | None) -> bool:
    """Whether a chat template renders a `tools` list at all (it reads the variable)."""
    return bool(template) and re.search(r"\btools\b", template) is not None


def tool_call_style(template: str | None) -> ToolCallStyle:
    """Which syntax a tool-calling template teaches its model to write calls in; ChatFormatError if unknown."""
    if not supports_tools(template):
        raise ChatFormatError("the chat template does not render tools (it never reads `tools`), so the model "
                              "has no native tool-calling format: use the text format")
    assert template is not None
    if "<tool_call>" in template:
        return "hermes"
    if "ipython" in template or _PYTHON_TAG in template or '"parameters"' in template:
        return "llama3_json"
    raise ChatFormatError("the chat template renders tools, but its tool-call syntax is neither Hermes/Qwen "
                          "(<tool_call>) nor Llama 3 (JSON with \"parameters\"): oec cannot read its calls back; "
                          "use the text format")


def chat_dicts(messages: list[Message], native: bool) -> list[dict[str, Any]]:
    """Messages as the dicts a chat template takes, in the text or the native layout (see the module doc)."""
    return [_native_dict(m) if native else _text_dict(m) for m in messages]


def _text_dict(m: Message) -> dict[str, Any]:
    role, content = m.role, m.content or ""
    if role == "tool":
        role = "user"
        if m.name:
            content = f"Output of {m.name}:\n{content}"
    elif role == "assistant" and m.tool_calls:
        calls = [json.dumps({"name": c.name, "arguments": c.arguments}) for c in m.tool_calls]
        content = "\n".join([content, *calls]) if content else "\n".join(calls)
    return {"role": role, "content": content}


def _native_dict(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content or ""}
    if m.role == "assistant" and m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in m.tool_calls]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
        if m.name:
            out["name"] = m.name
    return out


def render(tokenizer: Any, messages: list[dict[str, Any]], *, native: bool, generation_prompt: bool) -> str:
    """The template's text for these chat dicts (tools passed in the native format)."""
    kwargs: dict[str, Any] = {"tools": tool_schemas()} if native else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs)


def parse_tool_calls(text: str, style: ToolCallStyle, call_prefix: str = "call") -> tuple[str, list[ToolCall]]:
    """(thought, calls) from a native-format reply; a call whose JSON is broken keeps its parse_error.

    Why keep broken calls: the agent turns them into a format error the model is shown, as it does for an
    API model's malformed arguments, instead of the reply silently becoming "no tool call".
    """
    if style == "hermes":
        blocks = list(_HERMES_CALL.finditer(text))
        thought = _HERMES_CALL.sub("", text).strip()
        calls = [_call_from_json(m.group(1), f"{call_prefix}_{i}") for i, m in enumerate(blocks)]
        return thought, calls
    body = text.strip()
    if body.startswith(_PYTHON_TAG):
        body = body[len(_PYTHON_TAG):].strip()
    start = body.find("{")
    if start < 0 or not body.endswith("}"):
        return text.strip(), []
    return body[:start].strip(), [_call_from_json(body[start:], f"{call_prefix}_0")]


def _call_from_json(raw: str, call_id: str) -> ToolCall:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ToolCall(id=call_id, name=_guess_name(raw), parse_error=f"not JSON ({exc.msg}): {raw[:200]}")
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return ToolCall(id=call_id, name="", parse_error=f"expected {{\"name\": ..., \"arguments\": {{...}}}}, "
                                                         f"got {raw[:200]}")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            return ToolCall(id=call_id, name=value["name"], parse_error=f"arguments are not JSON ({exc.msg})")
    if not isinstance(arguments, dict):
        return ToolCall(id=call_id, name=value["name"], parse_error="arguments must be a JSON object")
    return ToolCall(id=call_id, name=value["name"], arguments=arguments)


def _guess_name(raw: str) -> str:
    match = re.search(r'"name"\s*:\s*"([^"]+)"', raw)
    return match.group(1) if match else ""
