"""Anthropic Messages API (Claude) as an expert or student model.

Why a mapping layer: the Messages API differs from chat completions in ways
the agent should not know about: the system prompt is a separate field, tool
calls are ``tool_use`` content blocks, tool results are ``tool_result`` blocks
inside a *user* turn, and consecutive turns of one role must be merged.
Retries, concurrency and cost work as in the OpenAI backend.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pydantic
from anthropic._constants import ANTHROPIC_API_VERSION

from oec.models.api_model import ApiModel, field_of
from oec.models.base import Completion, Message, ToolCall, ToolSpec, Usage
from oec.models.pricing import cost_usd
from oec.models.registry import ModelOptions
from oec.models.retry import TransientError


def to_anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in Messages API form.

    System messages are joined into the system prompt wherever they appear;
    tool turns become ``tool_result`` blocks of a user turn; consecutive
    turns of one role are merged into one turn of content blocks.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
            continue
        if m.role == "tool":
            role = "user"
            blocks: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                                             "content": m.content}]
        else:
            role = m.role
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": tc.id, "name": tc.name, "input": tc.arguments}
                       for tc in m.tool_calls]
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:  # the API rejects empty content; a lone text block is sent as a plain string
        if not turn["content"]:
            turn["content"] = [{"type": "text", "text": "(empty)"}]
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    return "\n\n".join(s for s in system if s), out


def to_anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


class AnthropicModel(ApiModel):
    """A Claude model; slots, retries and latency as every `ApiModel`.

    Prompt tokens include cache reads and writes; the cost prices them all
    at the plain input price (an upper bound when caching is used).
    """

    sdk = anthropic
    client_class = "AsyncAnthropic"
    api_key_env = "ANTHROPIC_API_KEY"
    error_tag = "type"  # {"type": "error", "error": {"type", "message"}}

    def __init__(self, model: str, options: ModelOptions | None = None, *, client: Any | None = None) -> None:
        if options is not None and "temperature" in options.model_fields_set:
            raise ValueError(f"anthropic:{model}: a temperature cannot be sent: the Messages API version "
                             f"{ANTHROPIC_API_VERSION} that this SDK speaks"
                             " has no sampling parameters; leave the role's --*-temperature unset")
        super().__init__(model, options, client=client)

    def request_body(self, messages: list[Message], tools: list[ToolSpec] | None) -> dict[str, Any]:
        """Keyword arguments for messages.create.

        `temperature` and `seed` are not sent: API version 2026-10-21 (what
        anthropic SDK 2.x speaks) removed sampling parameters and answers 400
        to any of them, and it never had a seed.
        """
        system, turns = to_anthropic_messages(messages)
        body: dict[str, Any] = {"model": self.name, "messages": turns, "max_tokens": self.options.max_tokens}
        if system:
            body["system"] = system
        if tools and self.native_tools:
            body["tools"] = to_anthropic_tools(tools)
        return body

    async def send(self, client: anthropic.AsyncAnthropic, body: dict[str, Any]) -> Any:
        return await client.messages.create(**body)

    def parse(self, response: Any) -> Completion:
        content = field_of(response, "content")
        if not isinstance(content, list) or not (content or field_of(response, "stop_reason")):
            raise TransientError("bad_response", f"response has no content: {str(response)[:300]}")
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in content:
            if not isinstance(block, (dict, pydantic.BaseModel)):
                raise TransientError("bad_response", f"bad content block: {str(block)[:200]}")
            kind = field_of(block, "type")
            if kind == "text":
                texts.append(field_of(block, "text") or "")
            elif kind == "tool_use":
                args = field_of(block, "input")
                error = None if isinstance(args, dict) else f"tool input must be an object, got {str(args)[:200]}"
                calls.append(ToolCall(id=field_of(block, "id") or f"toolu_{len(calls)}",
                                      name=field_of(block, "name") or "",
                                      arguments=args if isinstance(args, dict) else {}, parse_error=error))
        usage = field_of(response, "usage")
        prompt = sum(int(field_of(usage, k) or 0) for k in
                     ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        out = int(field_of(usage, "output_tokens") or 0)
        cost = cost_usd(self.name, prompt, out, self.options.price_in_per_mtok, self.options.price_out_per_mtok)
        return Completion(text="".join(texts), tool_calls=calls,
                          usage=Usage(prompt_tokens=prompt, completion_tokens=out, cost_usd=cost),
                          model=field_of(response, "model") or self.name,
                          finish_reason=field_of(response, "stop_reason"))
