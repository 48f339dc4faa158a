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
import time
from typing import Any

import openai
import pydantic

from oec.models.base import Completion, Message, ToolCall, ToolSpec, Usage
from oec.models.pricing import cost_usd
from oec.models.registry import ModelOptions
from oec.models.retry import PerLoop, TransientError, call_with_retries, classify_status

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


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """Field of an SDK object or a dict (lenient responses may be either)."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class OpenAIModel:
    """A chat model behind an OpenAI-compatible endpoint.

    `complete` holds one of `max_concurrency` slots for the whole call,
    retries included, so a rate-limited call backs off without letting
    another request take its place. `latency_s` is the time from taking the
    slot to the answer: failed attempts and backoff waits included, queueing
    for a slot excluded. The client and the semaphore are per event loop, so
    one instance also works across several ``asyncio.run`` calls.
    """

    def __init__(self, model: str, options: ModelOptions | None = None, *,
                 client: openai.AsyncOpenAI | None = None) -> None:
        self.options = options or ModelOptions()
        self.name = model
        self.native_tools = True if self.options.native_tools is None else self.options.native_tools
        api_key = self.options.resolve_api_key("OPENAI_API_KEY") if client is None else ""
        # one client and one semaphore per event loop (see PerLoop); an injected client is used as is
        self._client = PerLoop(lambda: client or openai.AsyncOpenAI(
            api_key=api_key, base_url=self.options.base_url, timeout=self.options.timeout_s, max_retries=0))
        self._semaphore = PerLoop(lambda: asyncio.Semaphore(self.options.max_concurrency))
        self.policy = self.options.retry_policy()

    def __repr__(self) -> str:
        return f"OpenAIModel({self.name!r}, base_url={self.options.base_url!r})"

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

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> Completion:
        body = self.request_body(messages, tools)
        async with self._semaphore.get():
            start = time.monotonic()
            completion = await call_with_retries(lambda: self._attempt(body), self.policy,
                                                 attempt_timeout_s=self.options.timeout_s * 2 + 5)
            completion.latency_s = time.monotonic() - start
        return completion

    async def _attempt(self, body: dict[str, Any]) -> Completion:
        try:
            response = await self._client.get().chat.completions.create(**body)
        except openai.APITimeoutError as exc:
            raise TransientError("timeout", f"no answer within {self.options.timeout_s}s: {exc}") from exc
        except openai.APIConnectionError as exc:
            raise TransientError("connection", f"{exc}: {exc.__cause__ or ''}") from exc
        except openai.APIStatusError as exc:
            raise classify_status(exc.status_code, _error_text(exc), exc.response.headers) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise TransientError("bad_response", f"unparseable response: {exc}") from exc
        return self._parse(response)

    def _parse(self, response: Any) -> Completion:
        choices = _get(response, "choices")
        if not choices or not isinstance(choices, list):
            raise TransientError("bad_response", f"response has no choices: {str(response)[:300]}")
        message = _get(choices[0], "message")
        if not isinstance(message, (dict, pydantic.BaseModel)):
            raise TransientError("bad_response", f"choice has no message: {str(choices[0])[:300]}")
        calls = []
        for i, tc in enumerate(_get(message, "tool_calls") or []):
            fn = _get(tc, "function")
            args, error = parse_tool_arguments(_get(fn, "arguments"))
            calls.append(ToolCall(id=_get(tc, "id") or f"call_{i}", name=_get(fn, "name") or "",
                                  arguments=args, parse_error=error))
        usage = _get(response, "usage")
        prompt = int(_get(usage, "prompt_tokens") or 0)
        out = int(_get(usage, "completion_tokens") or 0)
        cost = cost_usd(self.name, prompt, out, self.options.price_in_per_mtok, self.options.price_out_per_mtok)
        return Completion(text=_get(message, "content") or "", tool_calls=calls,
                          usage=Usage(prompt_tokens=prompt, completion_tokens=out, cost_usd=cost),
                          model=_get(response, "model") or self.name,
                          finish_reason=_get(choices[0], "finish_reason"))


def _error_text(exc: openai.APIStatusError) -> str:
    """The server's error message (OpenAI nests it in {"error": {"message"}}), else the SDK's."""
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            code = err.get("code")
            return f"{err['message']}" + (f" [{code}]" if code else "")
        if isinstance(err, str):
            return err
    return str(exc.message or exc)


__all__ = ["OpenAIModel", "to_openai_messages", "to_openai_tools", "parse_tool_arguments"]
