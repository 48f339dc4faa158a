"""The local transformers backend with the real embedded student (SmolLM2-135M-Instruct).

The checkpoint is materialized into the ordinary oec cache ($OEC_CACHE_DIR or
~/.cache/oec) so that only the first run ever pays for the GGUF conversion.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from oec.models import smollm2  # noqa: E402
from oec.models.base import Message, ModelError, ToolCall  # noqa: E402
from oec.models.hf import HFModel, call_seed, load_hf_causal_lm, to_chat_dicts  # noqa: E402
from oec.models.registry import ModelOptions, make_provider  # noqa: E402

CHAT = [
    Message(role="system", content="You are a helpful assistant."),
    Message(role="user", content="What is the capital of France? Answer in one word."),
]


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return smollm2.smollm2_checkpoint()


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> HFModel:
    provider = make_provider("hf:smollm2-135m", ModelOptions(max_tokens=16))
    m = provider.for_task(None)
    assert isinstance(m, HFModel) and provider.for_task("another task") is m
    m.load()
    return m


# -- no weights needed -------------------------------------------------------------------------


def test_tool_turns_become_text() -> None:
    msgs = [
        Message(role="user", content="fix it"),
        Message(role="assistant", content="", tool_calls=[ToolCall(id="1", name="bash", arguments={"command": "ls"})]),
        Message(role="tool", content="a.py", tool_call_id="1", name="bash"),
    ]
    out = to_chat_dicts(msgs)
    assert [d["role"] for d in out] == ["user", "assistant", "user"]
    assert json.loads(out[1]["content"]) == {"name": "bash", "arguments": {"command": "ls"}}
    assert out[2]["content"] == "Output of bash:\na.py"


def test_call_seed_depends_on_seed_and_prompt() -> None:
    assert call_seed(1, [1, 2, 3]) == call_seed(1, [1, 2, 3])
    assert call_seed(1, [1, 2, 3]) != call_seed(2, [1, 2, 3])
    assert call_seed(1, [1, 2, 3]) != call_seed(1, [1, 2, 4])


def test_bad_specs_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="names no model"):
        make_provider("hf:")
    with pytest.raises(ValueError, match="no checkpoint folder"):
        make_provider(f"hf:{tmp_path}/missing")
    with pytest.raises(ValueError, match="native format needs its chat template.*does not render tools"):
        make_provider("hf:smollm2-135m", ModelOptions(native_tools=True))  # SmolLM2's template has no tools
    assert make_provider("hf:smollm2-135m").spec == "hf:smollm2-135m"  # lazy: nothing loaded yet


def test_adapter_without_peft_says_so(tmp_path: Path) -> None:
    try:
        import peft  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("peft is installed")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    with pytest.raises(ImportError, match="peft"):
        load_hf_causal_lm(tmp_path)


def test_checkpoint_race_keeps_one_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builders racing: both get the same complete folder, and no temp folder is left behind.

    The 15-second GGUF conversion is replaced by a slow tiny writer: this
    tests the publish-by-rename logic, not transformers.
    """
    barrier = threading.Barrier(2)

    def fake_materialize(gguf: Path, out: Path) -> None:
        barrier.wait(timeout=10)
        (out / "config.json").write_text("{}")
        time.sleep(0.05)
        (out / smollm2.SOURCE_FILE).write_text(threading.current_thread().name)

    monkeypatch.setattr(smollm2, "_materialize", fake_materialize)
    stale = tmp_path / "models" / f".{smollm2.CHECKPOINT_DIRNAME}.dead"  # a build killed long ago
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(smollm2.smollm2_checkpoint(tmp_path)), name=f"t{i}")
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [smollm2.CHECKPOINT_DIRNAME]
    assert (results[0] / smollm2.SOURCE_FILE).read_text() in {"t0", "t1"}


# -- the real model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_is_plain_and_built_once(checkpoint: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    weights = checkpoint / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    start = time.perf_counter()
    assert smollm2.smollm2_checkpoint() == checkpoint
    assert time.perf_counter() - start < 1.0
    assert weights.stat().st_mtime_ns == stamp
    assert (checkpoint / "tokenizer_config.json").is_file()


@pytest.mark.slow
def test_chat_is_deterministic_at_temperature_zero(model: HFModel) -> None:
    first = asyncio.run(model.complete(CHAT))
    second = asyncio.run(model.complete(CHAT))
    assert first.text.strip()
    assert first.text == second.text
    assert first.usage.prompt_tokens > 0 and 0 < first.usage.completion_tokens <= 16
    assert first.usage.cost_usd == 0.0
    assert first.latency_s > 0 and first.model == "hf:smollm2-135m"
    assert first.finish_reason in {"stop", "length"}
    assert not first.tool_calls


@pytest.mark.slow
def test_concurrent_calls_are_serialized_and_agree(model: HFModel) -> None:
    async def both():
        return await asyncio.gather(model.complete(CHAT), model.complete(CHAT))

    a, b = asyncio.run(both())
    assert a.text == b.text


@pytest.mark.slow
def test_tool_messages_do_not_crash(model: HFModel) -> None:
    msgs = [*CHAT,
            Message(role="assistant", content="Let me look.",
                    tool_calls=[ToolCall(id="c1", name="bash", arguments={"command": "ls"})]),
            Message(role="tool", content="README.md\nsetup.py", tool_call_id="c1", name="bash")]
    completion = asyncio.run(model.complete(msgs))
    assert completion.usage.completion_tokens > 0


@pytest.mark.slow
def test_context_overflow_is_a_model_error(model: HFModel) -> None:
    assert model.max_context == 8192
    long = [Message(role="user", content="word " * 9000)]
    with pytest.raises(ModelError) as info:
        asyncio.run(model.complete(long))
    assert info.value.kind == "context_length"
    with pytest.raises(ModelError) as info:
        model.mean_logprob(long, "ok")
    assert info.value.kind == "context_length"


@pytest.mark.slow
def test_mean_logprob_prefers_the_likely_answer(model: HFModel) -> None:
    likely = model.mean_logprob(CHAT, "The capital of France is Paris.")
    junk = model.mean_logprob(CHAT, "zq!! 7x@ kw ]]~ plorb")
    assert math.isfinite(likely) and math.isfinite(junk)
    assert junk < likely < 0


@pytest.mark.slow
def test_checkpoint_path_spec_and_seeded_sampling(model: HFModel, checkpoint: Path) -> None:
    greedy = make_provider(f"hf:{checkpoint}", ModelOptions(max_tokens=16)).for_task(None)
    assert greedy.complete_sync(CHAT).text == model.complete_sync(CHAT).text

    sampled = HFModel(str(checkpoint), ModelOptions(max_tokens=16, temperature=1.0, seed=7))
    a, b = sampled.complete_sync(CHAT), sampled.complete_sync(CHAT)
    assert a.text and a.text == b.text  # same seed, same prompt: same sample


@pytest.mark.slow
def test_close_lets_go_of_the_weights_and_a_later_call_loads_again(checkpoint: Path) -> None:
    provider = make_provider("hf:smollm2-135m", ModelOptions(max_tokens=8))
    m = provider.for_task(None)
    before = asyncio.run(m.complete(CHAT))
    m.close()
    assert m._model is None and m._engine is None  # noqa: SLF001 - what close promises to drop
    assert asyncio.run(m.complete(CHAT)).text == before.text  # loaded again, same greedy answer
    m.close()
