"""Anthropic Messages API (Claude) as an expert or student model.

Why a mapping layer: the Messages API differs from chat completions in ways
the agent should not know about: the system prompt is a separate field, tool
calls are ``tool_use`` content blocks, tool results are ``tool_result`` blocks
inside a *user* turn, and consecutive turns of one role must be merged.
Retries, concurrency and cost work as in the OpenAI backend.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import pydantic

from oec.models.base import Completion, Message, ToolCall, ToolSpec, Usage
from oec.models.pricing import cost_usd
from oec.models.registry import ModelOptions
from oec.models.retry import PerLoop, TransientError, call_with_retries, classify_status


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


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class AnthropicModel:
    """A Claude model; same slot, retry and latency rules as `OpenAIModel`.

    Prompt tokens include cache reads and writes; the cost prices them all
    at the plain input price (an upper bound when caching is used).
    """

    def __init__(self, model: str, options: ModelOptions | None = None, *,
                 client: anthropic.AsyncAnthropic | None = None) -> None:
        self.options = options or ModelOptions()
        self.name = model
        self.native_tools = True if self.options.native_tools is None else self.options.native_tools
        api_key = self.options.resolve_api_key("ANTHROPIC_API_KEY") if client is None else ""
        # one client and one semaphore per event loop (see PerLoop); an injected client is used as is
        self._client = PerLoop(lambda: client or anthropic.AsyncAnthropic(
            api_key=api_key, base_url=self.options.base_url, timeout=self.options.timeout_s, max_retries=0))
        self._semaphore = PerLoop(lambda: asyncio.Semaphore(self.options.max_concurrency))
        self.policy = self.options.retry_policy()

    def __repr__(self) -> str:
        return f"AnthropicModel({self.name!r}, base_url={self.options.base_url!r})"

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
            response = await self._client.get().messages.create(**body)
        except anthropic.APITimeoutError as exc:
            raise TransientError("timeout", f"no answer within {self.options.timeout_s}s: {exc}") from exc
        except anthropic.APIConnectionError as exc:
            raise TransientError("connection", f"{exc}: {exc.__cause__ or ''}") from exc
        except anthropic.APIStatusError as exc:
            raise classify_status(exc.status_code, _error_text(exc), exc.response.headers) from exc
        except (anthropic.APIResponseValidationError, ValueError) as exc:
            raise TransientError("bad_response", f"unparseable response: {exc}") from exc
        return self._parse(response)

    def _parse(self, response: Any) -> Completion:
        content = _get(response, "content")
        if not isinstance(content, list) or not (content or _get(response, "stop_reason")):
            raise TransientError("bad_response", f"response has no content: {str(response)[:300]}")
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in content:
            if not isinstance(block, (dict, pydantic.BaseModel)):
                raise TransientError("bad_response", f"bad content block: {str(block)[:200]}")
            kind = _get(block, "type")
            if kind == "text":
                texts.append(_get(block, "text") or "")
            elif kind == "tool_use":
                args = _get(block, "input")
                error = None if isinstance(args, dict) else f"tool input must be an object, got {str(args)[:200]}"
                calls.append(ToolCall(id=_get(block, "id") or f"toolu_{len(calls)}", name=_get(block, "name") or "",
                                      arguments=args if isinstance(args, dict) else {}, parse_error=error))
        usage = _get(response, "usage")
        prompt = sum(int(_get(usage, k) or 0) for k in
                     ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        out = int(_get(usage, "output_tokens") or 0)
        cost = cost_usd(self.name, prompt, out, self.options.price_in_per_mtok, self.options.price_out_per_mtok)
        return Completion(text="".join(texts), tool_calls=calls,
                          usage=Usage(prompt_tokens=prompt, completion_tokens=out, cost_usd=cost),
                          model=_get(response, "model") or self.name, finish_reason=_get(response, "stop_reason"))


def _error_text(exc: anthropic.APIStatusError) -> str:
    """The server's message ({"type": "error", "error": {"type", "message"}}), else the SDK's."""
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return f"{err['message']}" + (f" [{err['type']}]" if err.get("type") else "")
    return str(exc.message or exc)
