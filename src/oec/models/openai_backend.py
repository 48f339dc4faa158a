"""OpenAI-compatible chat completions (OpenAI, vLLM, SGLang, llama.cpp server).

Why the official SDK with its retries off: it knows the wire format and
errors, while `oec.models.retry` owns retrying so tests can count attempts.
The response is read leniently (local servers omit fields) but anything we
cannot use (unparseable body, no choices) counts as a bad response and is
retried like a 5xx.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pydantic

from oec.models.api_model import ApiModel, PreflightError, field_of
from oec.models.base import Completion, Message, ToolCall, ToolSpec, Usage
from oec.models.pricing import cost_usd
from oec.models.retry import TransientError

# reasoning models reject `max_tokens` and a non-default temperature
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Our messages in chat.completions form: tool calls carry JSON-string arguments."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            out.append({
                "role": "assistant",
                "content": m.content or None,
                "tool_calls": [{"id": tc.id, "type": "function",
                                "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)}}
                               for tc in m.tool_calls],
            })
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def parse_tool_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """(arguments, parse_error): a JSON object string or dict is fine; "" means no arguments."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        return {}, f"arguments are not valid JSON ({exc}): {str(raw)[:200]}"
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}: {str(raw)[:200]}"
    return value, None


class OpenAIModel(ApiModel):
    """A chat model behind an OpenAI-compatible endpoint (slots, retries, latency: see `ApiModel`)."""

    sdk = openai
    client_class = "AsyncOpenAI"
    api_key_env = "OPENAI_API_KEY"

    def request_body(self, messages: list[Message], tools: list[ToolSpec] | None) -> dict[str, Any]:
        """Keyword arguments for chat.completions.create (public so tests and logs can see them)."""
        body: dict[str, Any] = {"model": self.name, "messages": to_openai_messages(messages)}
        if self.name.rsplit("/", 1)[-1].startswith(_REASONING_PREFIXES):
            body["max_completion_tokens"] = self.options.max_tokens
        else:
            body["max_tokens"] = self.options.max_tokens
            body["temperature"] = self.options.temperature
        if self.options.seed is not None:
            body["seed"] = self.options.seed
        if tools and self.native_tools:
            body["tools"] = to_openai_tools(tools)
        return body

    async def send(self, client: openai.AsyncOpenAI, body: dict[str, Any]) -> Any:
        return await client.chat.completions.create(**body)

    def parse(self, response: Any) -> Completion:
        choices = field_of(response, "choices")
        if not choices or not isinstance(choices, list):
            raise TransientError("bad_response", f"response has no choices: {str(response)[:300]}")
        message = field_of(choices[0], "message")
        if not isinstance(message, (dict, pydantic.BaseModel)):
            raise TransientError("bad_response", f"choice has no message: {str(choices[0])[:300]}")
        calls = []
        for i, tc in enumerate(field_of(message, "tool_calls") or []):
            fn = field_of(tc, "function")
            args, error = parse_tool_arguments(field_of(fn, "arguments"))
            calls.append(ToolCall(id=field_of(tc, "id") or f"call_{i}", name=field_of(fn, "name") or "",
                                  arguments=args, parse_error=error))
        usage = field_of(response, "usage")
        prompt = int(field_of(usage, "prompt_tokens") or 0)
        out = int(field_of(usage, "completion_tokens") or 0)
        cost = cost_usd(self.name, prompt, out, self.options.price_in_per_mtok, self.options.price_out_per_mtok)
        return Completion(text=field_of(message, "content") or "", tool_calls=calls,
                          usage=Usage(prompt_tokens=prompt, completion_tokens=out, cost_usd=cost),
                          model=field_of(response, "model") or self.name,
                          finish_reason=field_of(choices[0], "finish_reason"))

    async def check_served(self) -> None:
        """GET /models: the name must be among the served ones (a server without that route is not judged)."""
        try:
            page = await asyncio.wait_for(self._client.get().models.list(), timeout=self.options.timeout_s)
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):  # no model list here: the chat probe decides
                return
            raise PreflightError(self.where(), f"HTTP {exc.status_code}: {self.error_text(exc)}") from exc
        except (openai.APIConnectionError, asyncio.TimeoutError) as exc:
            raise PreflightError(self.where(), f"connection: {exc}: {exc.__cause__ or ''}") from exc
        except (openai.APIResponseValidationError, ValueError, TypeError) as exc:
            raise PreflightError(self.where(), f"the model list is not an OpenAI-style answer: {exc}") from exc
        served = [str(getattr(m, "id", "")) for m in getattr(page, "data", None) or []]
        if served and self.name not in served:
            shown = ", ".join(served[:10]) + (f" and {len(served) - 10} more" if len(served) > 10 else "")
            raise PreflightError(self.where(), f"the server does not serve {self.name!r}; it serves: {shown}")


__all__ = ["OpenAIModel", "to_openai_messages", "to_openai_tools", "parse_tool_arguments"]
