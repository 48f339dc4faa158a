"""Model specs, options, the provider registry, and the shared pricing/retry helpers."""

from __future__ import annotations

import asyncio
import random
import sys

import pytest

from oec.models import registry
from oec.models.anthropic_backend import AnthropicModel
from oec.models.base import Model, ModelError
from oec.models.openai_backend import OpenAIModel
from oec.models.pricing import cost_usd, price_per_mtok
from oec.models.registry import ModelOptions, ModelProvider, make_provider, parse_spec, register_backend
from oec.models.retry import RetryPolicy, TransientError, call_with_retries, parse_retry_after


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return monkeypatch


def test_parse_spec() -> None:
    assert parse_spec("openai:gpt-4o") == ("openai", "gpt-4o")
    assert parse_spec("hf:HuggingFaceTB/SmolLM2-135M-Instruct") == ("hf", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert parse_spec("scripted:@/tmp/a:b.json") == ("scripted", "@/tmp/a:b.json")
    assert parse_spec("oracle") == ("oracle", "")
    for bad in ["", "   ", ":gpt-4o"]:
        with pytest.raises(ValueError, match="malformed model spec"):
            parse_spec(bad)


def test_unknown_backend_names_spec_and_known_backends() -> None:
    with pytest.raises(ValueError) as err:
        make_provider("vllmx:qwen")
    assert "'vllmx:qwen'" in str(err.value)
    for name in ("openai", "anthropic", "scripted", "hf", "oracle"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="names no model"):
        make_provider("openai:")


def test_openai_and_anthropic_providers_share_one_model(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-env")
    provider = make_provider("openai:gpt-4o-mini", ModelOptions(max_concurrency=3))
    assert isinstance(provider, ModelProvider) and provider.spec == "openai:gpt-4o-mini"
    model = provider.for_task(object())
    assert isinstance(model, OpenAIModel) and isinstance(model, Model)
    assert model is provider.for_task(object()) and model.name == "gpt-4o-mini" and model.native_tools
    clean_env.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    model = make_provider("anthropic:claude-sonnet-4-5", ModelOptions(native_tools=False)).for_task(None)
    assert isinstance(model, AnthropicModel) and model.native_tools is False


def test_api_key_resolution(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_provider("openai:gpt-4o")
    assert ModelOptions(base_url="http://127.0.0.1:8000/v1").resolve_api_key("OPENAI_API_KEY") == "EMPTY"
    assert ModelOptions(api_key="k", base_url="http://x").resolve_api_key("OPENAI_API_KEY") == "k"
    clean_env.setenv("ANTHROPIC_API_KEY", "from-env")
    assert ModelOptions().resolve_api_key("ANTHROPIC_API_KEY") == "from-env"


def test_options_validate() -> None:
    opts = ModelOptions()
    assert (opts.max_concurrency, opts.temperature, opts.max_tokens, opts.timeout_s, opts.max_retries, opts.seed) == \
        (8, 0.0, 1024, 120.0, 5, None)
    with pytest.raises(ValueError):
        ModelOptions(max_concurency=2)  # typo: extra keys are rejected
    with pytest.raises(ValueError):
        ModelOptions(max_concurrency=0)
    assert opts.retry_policy() == RetryPolicy(max_retries=5, base_s=1.0, max_s=60.0)


def test_register_backend_and_lazy_modules(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))

    class Fixed:
        def __init__(self, spec: str) -> None:
            self.spec = spec

        def for_task(self, task):  # noqa: ANN001
            return task

    seen = []
    register_backend("echo", lambda model, options: seen.append((model, options)) or Fixed(f"echo:{model}"))
    provider = make_provider("echo:a:b", ModelOptions(seed=3))
    assert provider.spec == "echo:a:b" and seen[0][0] == "a:b" and seen[0][1].seed == 3
    with pytest.raises(ValueError):
        register_backend("bad:name", lambda m, o: Fixed(m))

    # "oracle" is imported on first use when nothing registered it yet; the import registers it
    (tmp_path / "fake_oracle_mod.py").write_text(
        "from oec.models.registry import register_backend\n"
        "class P:\n"
        "    def __init__(self, spec): self.spec = spec\n"
        "    def for_task(self, task): return task\n"
        "register_backend('oracle', lambda model, options: P('oracle:' + model))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_LAZY_MODULES", {**registry._LAZY_MODULES, "oracle": "fake_oracle_mod"})
    registry._BACKENDS.pop("oracle", None)
    assert make_provider("oracle").spec == "oracle:"
    assert make_provider("oracle:gold").spec == "oracle:gold"

    registry._BACKENDS.pop("oracle")
    monkeypatch.setattr(registry, "_LAZY_MODULES", {**registry._LAZY_MODULES, "oracle": "no_such_module_xyz"})
    with pytest.raises(ImportError, match="oracle.*no_such_module_xyz"):
        make_provider("oracle:gold")
    monkeypatch.delitem(sys.modules, "fake_oracle_mod")


def test_pricing() -> None:
    assert price_per_mtok("gpt-4o") == (2.50, 10.00)
    assert price_per_mtok("gpt-4o-2024-08-06") == price_per_mtok("openai/gpt-4o") == (2.50, 10.00)
    assert price_per_mtok("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_per_mtok("claude-3-5-sonnet-20241022") == price_per_mtok("claude-3-5-sonnet-latest") == (3.0, 15.0)
    for unknown in ["HuggingFaceTB/SmolLM2-135M-Instruct", "claude-opus-4-9", "gpt-4o-turbo-pro", ""]:
        assert price_per_mtok(unknown) is None
        assert cost_usd(unknown, 100, 100) is None
    assert cost_usd("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)
    assert cost_usd("gpt-4o", 1_000_000, 0, price_in_per_mtok=1.0) == pytest.approx(1.0)
    assert cost_usd("local", 1_000_000, 0, price_in_per_mtok=1.0) is None  # output price still unknown
    assert cost_usd("local", 1_000_000, 500_000, 1.0, 2.0) == pytest.approx(2.0)


def test_retry_delays_and_retry_after() -> None:
    policy = RetryPolicy(max_retries=5, base_s=1.0, max_s=8.0)
    rng = random.Random(0)
    for i, (lo, hi) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8), (4, 8)]):
        assert lo <= policy.delay(i, rng=rng) <= hi
    assert policy.delay(0, retry_after=5.0, rng=rng) == 5.0
    assert policy.delay(0, retry_after=1000.0, rng=rng) == 8.0  # capped
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


def test_call_with_retries_counts_attempts_and_passes_final_errors() -> None:
    attempts = []
    delays = []

    async def sleep(s: float) -> None:
        delays.append(s)

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientError("server", "HTTP 500", retry_after=0.5 if len(attempts) == 1 else None)
        return "ok"

    assert asyncio.run(call_with_retries(flaky, RetryPolicy(3, 0.01, 1.0), sleep=sleep)) == "ok"
    assert len(attempts) == 3 and delays[0] == 0.5 and delays[1] < 0.05

    async def final():
        attempts.append(1)
        raise ModelError("context_length", "too long")

    attempts.clear()
    with pytest.raises(ModelError, match="too long"):
        asyncio.run(call_with_retries(final, RetryPolicy(3, 0.0, 0.0), sleep=sleep))
    assert len(attempts) == 1

    async def slow():
        await asyncio.sleep(10)

    with pytest.raises(ModelError) as err:
        asyncio.run(call_with_retries(slow, RetryPolicy(1, 0.0, 0.0), attempt_timeout_s=0.05))
    assert err.value.kind == "timeout" and "2 attempts" in str(err.value)
