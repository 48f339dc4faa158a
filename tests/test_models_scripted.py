"""ScriptedModel: replies in order per rollout, records what it saw, ends as configured."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from oec.models.base import Completion, Message, Model, ModelError, ToolCall, ToolSpec
from oec.models.registry import ModelOptions, make_provider
from oec.models.scripted import ScriptedModel, ScriptedProvider, register_script

BASH = ToolSpec(name="bash", description="run", parameters={"type": "object"})


def ask(model: Model, text: str, tools: list[ToolSpec] | None = None) -> Completion:
    return asyncio.run(model.complete([Message(role="user", content=text)], tools))


def test_text_script_in_order_with_fresh_cursor_per_rollout() -> None:
    register_script("two-steps", ["```bash\nls\n```", "```bash\nsubmit\n```"])
    provider = make_provider("scripted:two-steps")
    assert isinstance(provider, ScriptedProvider) and provider.spec == "scripted:two-steps"
    first, second = provider.for_task(None), provider.for_task(None)
    assert first is not second and isinstance(first, Model)
    assert first.native_tools is False
    assert ask(first, "a").text == "```bash\nls\n```"
    assert ask(first, "b").text == "```bash\nsubmit\n```"
    assert ask(second, "c").text == "```bash\nls\n```"  # the other rollout starts over
    with pytest.raises(ModelError) as err:
        ask(first, "d")
    assert err.value.kind == "other" and "exhausted" in str(err.value)
    assert provider.models == [first, second]


def test_records_every_call() -> None:
    register_script("rec", ["one", "two"])
    model = make_provider("scripted:rec").for_task(None)
    history = [Message(role="system", content="sys"), Message(role="user", content="task")]
    asyncio.run(model.complete(history))
    history.append(Message(role="assistant", content="one"))  # mutating the caller's list later...
    asyncio.run(model.complete(history, [BASH]))
    assert [len(c) for c in model.calls] == [2, 3]  # ...does not change what was recorded
    assert model.calls[1][-1] == Message(role="assistant", content="one")
    assert model.tools_seen == [None, [BASH]]


def test_tool_call_replies_make_a_native_model() -> None:
    register_script("native", [
        {"text": "looking", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]},
        {"tool_calls": [{"name": "bash", "arguments": "{not json", "id": "x1"}]},
        {"text": "done", "usage": {"prompt_tokens": 5, "completion_tokens": 2, "cost_usd": 0.25}},
    ])
    model = make_provider("scripted:native").for_task(None)
    assert model.native_tools is True
    out = ask(model, "go", [BASH])
    assert out.text == "looking"
    assert out.tool_calls == [ToolCall(id="call_1_0", name="bash", arguments={"command": "ls"})]
    assert out.finish_reason == "tool_calls" and out.usage.prompt_tokens > 0 and out.usage.cost_usd is None
    (bad,) = ask(model, "go").tool_calls
    assert bad.id == "x1" and bad.parse_error and bad.arguments == {}
    last = ask(model, "go")
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.cost_usd) == (5, 2, 0.25)


def test_final_reply_exceptions_callables_and_options() -> None:
    seen = []
    register_script("dyn", [lambda msgs: seen.append(msgs[-1].content) or f"echo {msgs[-1].content}",
                            ModelError("rate_limit", "scripted failure"),
                            Completion(text="prebuilt")],
                    final="give up", native_tools=True)
    model = make_provider("scripted:dyn", ModelOptions(native_tools=False, price_in_per_mtok=1.0,
                                                       price_out_per_mtok=1.0)).for_task(None)
    assert model.native_tools is False  # the option overrides the script
    assert ask(model, "hello").text == "echo hello" and seen == ["hello"]
    with pytest.raises(ModelError) as err:
        ask(model, "x")
    assert err.value.kind == "rate_limit"
    assert ask(model, "x").text == "prebuilt"
    out = ask(model, "x")
    assert out.text == "give up" and ask(model, "y").text == "give up"
    assert out.usage.cost_usd is not None and out.usage.cost_usd > 0


def test_json_and_jsonl_files(tmp_path: Path) -> None:
    tool_reply = {"text": "b", "tool_calls": [{"name": "bash", "arguments": {}}]}
    (tmp_path / "s.json").write_text(json.dumps(["a", tool_reply]))
    (tmp_path / "s.jsonl").write_text('"first"\n\n{"text": "second"}\n')
    (tmp_path / "o.json").write_text(json.dumps({"replies": ["only"], "final": "again"}))
    m = make_provider(f"scripted:@{tmp_path / 's.json'}").for_task(None)
    assert m.native_tools is True and ask(m, "q").text == "a" and ask(m, "q").tool_calls[0].name == "bash"
    m = make_provider(f"scripted:@{tmp_path / 's.jsonl'}").for_task(None)
    assert [ask(m, "q").text for _ in range(2)] == ["first", "second"] and m.native_tools is False
    m = make_provider(f"scripted:@{tmp_path / 'o.json'}").for_task(None)
    assert [ask(m, "q").text for _ in range(3)] == ["only", "again", "again"]


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no script named 'nope'"):
        make_provider("scripted:nope")
    with pytest.raises(ValueError, match="not found"):
        make_provider(f"scripted:@{tmp_path / 'missing.json'}")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        make_provider(f"scripted:@{tmp_path / 'bad.json'}")
    (tmp_path / "dict.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="list of replies"):
        make_provider(f"scripted:@{tmp_path / 'dict.json'}")


def test_model_can_be_built_directly() -> None:
    from oec.models.scripted import Script

    model = ScriptedModel(Script(["x"]), name="s")
    assert ask(model, "q").text == "x" and model.cursor == 1


def test_release_providers_drops_the_process_cache_and_closes_models() -> None:
    """A long experiment releases each arm's model before the next: the cache empties, closable models are
    closed, and asking again builds a fresh provider."""
    from oec.models.portable import cached_provider, release_providers
    from oec.models.registry import ModelOptions

    release_providers()
    first = cached_provider("oracle", ModelOptions())
    assert cached_provider("oracle", ModelOptions()) is first
    closed = []
    first.model = type("Closable", (), {"close": lambda self: closed.append(True)})()  # type: ignore[attr-defined]
    assert release_providers() == 1 and closed == [True]
    assert cached_provider("oracle", ModelOptions()) is not first
