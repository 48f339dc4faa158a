"""OpenAIModel against a local HTTP server that fails on purpose.

The server is `fake_http.FakeServer`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from fake_http import FakeServer, Reply, free_port

from oec.models.base import Message, ModelError, ToolCall, ToolSpec
from oec.models.openai_backend import OpenAIModel
from oec.models.registry import ModelOptions


@pytest.fixture
def server():
    s = FakeServer().start()
    yield s
    s.stop()


def chat_response(text: str | None = "ok", tool_calls: list[dict] | None = None, usage=(10, 5),
                  model: str = "gpt-4o") -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": tc["name"], "arguments": tc["arguments"]}}
                                 for i, tc in enumerate(tool_calls)]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


def make_model(server_or_url: FakeServer | str, model: str = "gpt-4o", **opts: Any) -> OpenAIModel:
    url = server_or_url.url if isinstance(server_or_url, FakeServer) else server_or_url
    opts = {"retry_base_s": 0.001, "retry_max_s": 0.05, **opts}
    options = ModelOptions(base_url=url + "/v1", api_key="sk-test", **opts)
    return OpenAIModel(model, options)


USER = [Message(role="user", content="hi")]
BASH = ToolSpec(name="bash", description="run a command",
                parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]})


def run(coro):
    return asyncio.run(coro)


def test_native_tool_call_round_trip(server: FakeServer) -> None:
    server.replies = [Reply(body=chat_response(None, [{"name": "bash", "arguments": '{"command": "ls -la"}'}],
                                               usage=(1000, 200)))]
    model = make_model(server, seed=7, max_tokens=64)
    history = [
        Message(role="system", content="you are an agent"),
        Message(role="user", content="fix the bug"),
        Message(role="assistant", content="",
                tool_calls=[ToolCall(id="call_a", name="bash", arguments={"command": "pwd"})]),
        Message(role="tool", content="/repo", tool_call_id="call_a", name="bash"),
    ]
    out = run(model.complete(history, [BASH]))

    assert out.tool_calls == [ToolCall(id="call_0", name="bash", arguments={"command": "ls -la"})]
    assert out.text == "" and out.finish_reason == "tool_calls" and out.model == "gpt-4o"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (1000, 200)
    assert out.usage.cost_usd == pytest.approx((1000 * 2.50 + 200 * 10.00) / 1e6)
    assert out.latency_s > 0

    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer sk-test"
    body = req["json"]
    assert body["model"] == "gpt-4o" and body["temperature"] == 0.0 and body["max_tokens"] == 64 and body["seed"] == 7
    assert body["tools"] == [{"type": "function", "function": {"name": "bash", "description": "run a command",
                                                               "parameters": BASH.parameters}}]
    assert body["messages"][0] == {"role": "system", "content": "you are an agent"}
    call = body["messages"][2]["tool_calls"][0]
    assert call["id"] == "call_a" and call["type"] == "function" and call["function"]["name"] == "bash"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"command": "pwd"}
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_a", "content": "/repo"}


@pytest.mark.parametrize("raw", ['{"command": ', '["ls"]'])
def test_invalid_tool_arguments_become_parse_errors(server: FakeServer, raw: str) -> None:
    server.replies = [Reply(body=chat_response(None, [{"name": "bash", "arguments": raw}]))]
    (call,) = run(make_model(server).complete(USER, [BASH])).tool_calls
    assert call.name == "bash" and call.arguments == {} and call.parse_error


def test_text_mode_sends_no_tools_and_unknown_model_has_no_cost(server: FakeServer) -> None:
    server.replies = [Reply(body=chat_response("THOUGHT: look\n```bash\nls\n```", model="my-local-model"))]
    model = make_model(server, model="my-local-model", native_tools=False)
    assert model.native_tools is False
    out = run(model.complete(USER, [BASH]))
    assert out.text.startswith("THOUGHT") and out.usage.cost_usd is None and out.usage.prompt_tokens == 10
    assert "tools" not in server.requests[0]["json"]


def test_price_overrides(server: FakeServer) -> None:
    server.replies = [Reply(body=chat_response(usage=(2_000_000, 1_000_000), model="local"))]
    out = run(make_model(server, model="local", price_in_per_mtok=0.5, price_out_per_mtok=1.0).complete(USER))
    assert out.usage.cost_usd == pytest.approx(2.0)


@pytest.mark.parametrize("header", [{"Retry-After": "0.3"}, {"retry-after-ms": "300"}])
def test_429_then_success_honours_retry_after(server: FakeServer, header: dict) -> None:
    server.replies = [Reply(429, {"error": {"message": "slow down", "type": "rate_limit"}}, header),
                      Reply(body=chat_response("done"))]
    model = make_model(server, retry_max_s=5.0)
    start = time.monotonic()
    out = run(model.complete(USER))
    assert out.text == "done" and server.attempts == 2
    assert time.monotonic() - start >= 0.3
    assert out.latency_s >= 0.3  # latency includes the failed attempt and the wait


def test_rate_limit_gives_up_with_kind(server: FakeServer) -> None:
    server.replies = [Reply(429, {"error": {"message": "slow down"}})]
    with pytest.raises(ModelError) as err:
        run(make_model(server, max_retries=2).complete(USER))
    assert err.value.kind == "rate_limit" and server.attempts == 3


def test_server_errors_forever_give_up_after_max_retries(server: FakeServer) -> None:
    server.replies = [Reply(500, {"error": {"message": "boom"}})]
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        run(make_model(server, max_retries=4).complete(USER))
    assert err.value.kind == "server" and "boom" in str(err.value)
    assert server.attempts == 5
    assert time.monotonic() - start < 3


def test_server_error_then_success(server: FakeServer) -> None:
    server.replies = [Reply(503, "upstream down"), Reply(502, "bad gateway"), Reply(body=chat_response("fine"))]
    assert run(make_model(server).complete(USER)).text == "fine" and server.attempts == 3


@pytest.mark.parametrize("body", ["this is not json {", '{"foo": 1}', '{"choices": []}', "", "[1, 2]"])
def test_garbage_response_is_bad_response(server: FakeServer, body: str) -> None:
    server.replies = [Reply(200, body)]
    with pytest.raises(ModelError) as err:
        run(make_model(server, max_retries=2).complete(USER))
    assert err.value.kind == "bad_response" and server.attempts == 3


def test_garbage_then_success(server: FakeServer) -> None:
    server.replies = [Reply(200, "<html>oops</html>"), Reply(body=chat_response("recovered"))]
    assert run(make_model(server).complete(USER)).text == "recovered" and server.attempts == 2


def test_server_that_never_answers_times_out(server: FakeServer) -> None:
    server.replies = [Reply(hang=True)]
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        run(make_model(server, timeout_s=0.5, max_retries=1).complete(USER))
    assert err.value.kind == "timeout" and server.attempts == 2
    assert time.monotonic() - start < 4


def test_connection_refused() -> None:
    model = make_model(f"http://127.0.0.1:{free_port()}", max_retries=2)
    with pytest.raises(ModelError) as err:
        run(model.complete(USER))
    assert err.value.kind == "connection"


@pytest.mark.parametrize("message", [
    "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens.",
    "Requested tokens (3000) exceed context window of 2048",
])
def test_context_length_is_not_retried(server: FakeServer, message: str) -> None:
    server.replies = [Reply(400, {"error": {"message": message, "type": "invalid_request_error"}})]
    with pytest.raises(ModelError) as err:
        run(make_model(server).complete(USER))
    assert err.value.kind == "context_length" and server.attempts == 1


@pytest.mark.parametrize("status,kind", [(401, "auth"), (404, "other"), (400, "other")])
def test_client_errors_are_final(server: FakeServer, status: int, kind: str) -> None:
    server.replies = [Reply(status, {"error": {"message": "nope"}})]
    with pytest.raises(ModelError) as err:
        run(make_model(server).complete(USER))
    assert err.value.kind == kind and server.attempts == 1


def test_concurrency_is_limited_per_model(server: FakeServer) -> None:
    server.replies = [Reply(body=chat_response(), delay=0.15)]
    model = make_model(server, max_concurrency=2)

    async def many():
        return await asyncio.gather(*(model.complete(USER) for _ in range(6)))

    assert len(run(many())) == 6
    assert server.max_in_flight == 2


def test_reasoning_models_get_max_completion_tokens(server: FakeServer) -> None:
    server.replies = [Reply(body=chat_response(model="o4-mini"))]
    run(make_model(server, model="o4-mini", max_tokens=99).complete(USER))
    body = server.requests[0]["json"]
    assert body["max_completion_tokens"] == 99 and "max_tokens" not in body and "temperature" not in body
