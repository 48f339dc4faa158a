"""AnthropicModel against a local server speaking the Messages API shape."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fake_http import FakeServer, Reply, free_port

from oec.models.anthropic_backend import AnthropicModel, to_anthropic_messages
from oec.models.base import Message, ModelError, ToolCall, ToolSpec
from oec.models.registry import ModelOptions

BASH = ToolSpec(name="bash", description="run a command",
                parameters={"type": "object", "properties": {"command": {"type": "string"}}})
USER = [Message(role="user", content="hi")]


@pytest.fixture
def server():
    s = FakeServer().start()
    yield s
    s.stop()


def messages_response(text: str | None = "ok", tool_uses: list[dict] | None = None, usage=(10, 5),
                      model: str = "claude-sonnet-4-20250514") -> dict:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": t["name"], "input": t["input"]}
                for i, t in enumerate(tool_uses or [])]
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "tool_use" if tool_uses else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def make_model(url: str, model: str = "claude-sonnet-4-20250514", **opts: Any) -> AnthropicModel:
    opts = {"retry_base_s": 0.001, "retry_max_s": 0.05, "api_key": "sk-ant-test", **opts}
    return AnthropicModel(model, ModelOptions(base_url=url, **opts))


def run(coro):
    return asyncio.run(coro)


def test_tool_use_round_trip(server: FakeServer) -> None:
    server.replies = [Reply(body=messages_response("Let me look.", [{"name": "bash", "input": {"command": "ls"}}],
                                                   usage=(1000, 100)))]
    history = [
        Message(role="system", content="you are an agent"),
        Message(role="user", content="fix the bug"),
        Message(role="assistant", content="checking", tool_calls=[
            ToolCall(id="toolu_a", name="bash", arguments={"command": "pwd"}),
            ToolCall(id="toolu_b", name="bash", arguments={"command": "id"})]),
        Message(role="tool", content="/repo", tool_call_id="toolu_a", name="bash"),
        Message(role="tool", content="uid=0", tool_call_id="toolu_b", name="bash"),
        Message(role="user", content="keep going"),
    ]
    out = run(make_model(server.url, max_tokens=77).complete(history, [BASH]))

    assert out.text == "Let me look." and out.finish_reason == "tool_use"
    assert out.tool_calls == [ToolCall(id="toolu_0", name="bash", arguments={"command": "ls"})]
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (1000, 100)
    assert out.usage.cost_usd == pytest.approx((1000 * 3 + 100 * 15) / 1e6)

    (req,) = server.requests
    assert req["path"] == "/v1/messages"
    # SDK 2.x sends the key as a bearer token; older ones as x-api-key
    sent = {req["headers"].get("x-api-key"), req["headers"].get("authorization", "").removeprefix("Bearer ")}
    assert "sk-ant-test" in sent
    body = req["json"]
    assert body["system"] == "you are an agent" and body["max_tokens"] == 77 and "temperature" not in body
    assert body["tools"] == [{"name": "bash", "description": "run a command", "input_schema": BASH.parameters}]
    assert body["messages"] == [
        {"role": "user", "content": "fix the bug"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "toolu_a", "name": "bash", "input": {"command": "pwd"}},
            {"type": "tool_use", "id": "toolu_b", "name": "bash", "input": {"command": "id"}}]},
        {"role": "user", "content": [  # both results and the next user text share one user turn
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "/repo"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "uid=0"},
            {"type": "text", "text": "keep going"}]},
    ]


def test_text_mode_and_system_messages_joined() -> None:
    system, turns = to_anthropic_messages([Message(role="system", content="a"), Message(role="user", content="q"),
                                           Message(role="system", content="b")])
    assert system == "a\n\nb" and turns == [{"role": "user", "content": "q"}]


def test_text_mode_sends_no_tools(server: FakeServer) -> None:
    server.replies = [Reply(body=messages_response("```bash\nls\n```", model="claude-x"))]
    out = run(make_model(server.url, model="claude-x", native_tools=False).complete(USER, [BASH]))
    assert out.text.startswith("```bash") and out.usage.cost_usd is None
    assert "tools" not in server.requests[0]["json"] and "system" not in server.requests[0]["json"]


def test_overloaded_then_success_honours_retry_after(server: FakeServer) -> None:
    server.replies = [Reply(529, error("overloaded_error", "Overloaded"), {"retry-after": "0.3"}),
                      Reply(429, error("rate_limit_error", "slow down")),
                      Reply(body=messages_response("done"))]
    start = time.monotonic()
    out = run(make_model(server.url, retry_max_s=5.0).complete(USER))
    assert out.text == "done" and server.attempts == 3 and time.monotonic() - start >= 0.3


@pytest.mark.parametrize("reply,kind,attempts", [
    (Reply(500, error("api_error", "boom")), "server", 4),
    (Reply(429, error("rate_limit_error", "slow down")), "rate_limit", 4),
    (Reply(200, "not json at all"), "bad_response", 4),
    (Reply(200, '{"hello": "world"}'), "bad_response", 4),
    (Reply(400, error("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")),
     "context_length", 1),
    (Reply(401, error("authentication_error", "invalid x-api-key")), "auth", 1),
])
def test_failures_map_to_kinds(server: FakeServer, reply: Reply, kind: str, attempts: int) -> None:
    server.replies = [reply]
    with pytest.raises(ModelError) as err:
        run(make_model(server.url, max_retries=3).complete(USER))
    assert err.value.kind == kind and server.attempts == attempts


def test_timeout_and_connection_refused(server: FakeServer) -> None:
    server.replies = [Reply(hang=True)]
    with pytest.raises(ModelError) as err:
        run(make_model(server.url, timeout_s=0.5, max_retries=0).complete(USER))
    assert err.value.kind == "timeout"
    with pytest.raises(ModelError) as err:
        run(make_model(f"http://127.0.0.1:{free_port()}", max_retries=1).complete(USER))
    assert err.value.kind == "connection"


def test_non_object_tool_input_is_a_parse_error(server: FakeServer) -> None:
    server.replies = [Reply(body=messages_response(None, [{"name": "bash", "input": "ls"}]))]
    (call,) = run(make_model(server.url).complete(USER, [BASH])).tool_calls
    assert call.parse_error and call.arguments == {}
