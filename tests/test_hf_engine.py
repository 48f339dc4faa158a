"""The hf decoding engine: batched and prefix-reusing decode gives what a lone, uncached decode gives.

The reference is the loop HFModel ran before the engine existed (full
prompt, then one token per pass, batch of one), kept here verbatim in spirit
so the engine is always checked against the plain decode, never against
itself.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import CancelledError

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from oec.models.base import Message
from oec.models.hf import HFModel
from oec.models.hf_engine import HFEngine, PrefixCache
from oec.models.registry import ModelOptions

SYSTEM = Message(role="system", content="You are a coding agent in a repository. Answer with one bash command "
                                        "in a ```bash block, after one sentence of thought.")
QUESTIONS = ["List the files.", "Show README.md with line numbers.", "Run the tests with pytest -q.",
             "Find where parse_args is defined.", "What is 2+2?", "Write a haiku about rust.",
             "Explain git rebase in one line.", "Count the lines of setup.py."]


# -- the prefix cache alone (no weights) -----------------------------------------------------------


def _layers(n_tokens: int, n_layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fake KV tensors whose values are the token positions, so a crop is visible."""
    k = torch.arange(n_tokens, dtype=torch.float32).reshape(1, 1, n_tokens, 1)
    return [(k.clone(), k.clone()) for _ in range(n_layers)]


def test_prefix_cache_finds_the_longest_prefix_and_crops_to_it() -> None:
    cache = PrefixCache(max_bytes=1 << 20, max_entries=8)
    cache.store([1, 2, 3, 4], _layers(4))
    cache.store([1, 2, 9, 9, 9], _layers(5))
    n, layers = cache.lookup([1, 2, 3, 4, 5, 6], limit=5)
    assert n == 4 and layers[0][0].shape[2] == 4
    n, layers = cache.lookup([1, 2, 3, 4], limit=3)  # at least one token must be left to run
    assert n == 3 and layers[0][0].flatten().tolist() == [0, 1, 2]
    assert cache.lookup([7, 7], limit=1) == (0, None)


def test_prefix_cache_drops_superseded_entries_and_stays_bounded() -> None:
    per_token = 2 * 2 * 4  # two layers of keys and values, one float32 each
    cache = PrefixCache(max_bytes=30 * per_token, max_entries=3)
    cache.store([1, 2], _layers(2))
    cache.store([1, 2, 3, 4], _layers(4))  # the rollout's next call: its previous entry goes
    assert len(cache) == 1 and cache.nbytes == 4 * per_token
    for start in range(10, 60, 10):
        cache.store(list(range(start, start + 8)), _layers(8))
        assert cache.nbytes <= cache.max_bytes and len(cache) <= cache.max_entries
    assert cache.lookup([1, 2, 3, 4, 5], limit=4) == (0, None)  # the oldest were evicted
    assert cache.lookup(list(range(50, 58)), limit=7)[0] == 7
    cache.store(list(range(100)), _layers(100))  # bigger than the whole bound: never kept
    assert cache.lookup(list(range(100)), limit=99) == (0, None)


# -- the real model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf() -> HFModel:
    model = HFModel("smollm2-135m", ModelOptions(max_tokens=32))
    model.load()
    return model


def _reference_decode(hf: HFModel, ids: list[int], max_new: int, stop_ids: set[int] | None = None,
                      temperature: float = 0.0, seed: int | None = None) -> tuple[list[int], str]:
    """The decode HFModel did before the engine: full prompt, batch of one, no reuse."""
    model, stop_ids = hf._model, hf._stop_ids if stop_ids is None else stop_ids
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    new: list[int] = []
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        for step in range(max_new):
            logits = out.logits[0, -1].float()
            if generator is None:
                token = int(torch.argmax(logits))
            else:
                token = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))
            new.append(token)
            if token in stop_ids:
                return new, "stop"
            if step + 1 < max_new:
                out = model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True, logits_to_keep=1)
    return new, "length"


def _engine(hf: HFModel, **kwargs) -> HFEngine:
    return HFEngine(hf._model, lock=hf._run_lock, **kwargs)


def _first_turns(hf: HFModel) -> list[list[Message]]:
    return [[SYSTEM, Message(role="user", content=q)] for q in QUESTIONS]


def _next_turn(hf: HFModel, history: list[Message], new: list[int], finish: str) -> list[Message]:
    """The history a rollout would send next: the answer, then a tool result."""
    text = hf.tokenizer.decode(new[:-1] if finish == "stop" else new, skip_special_tokens=True)
    return [*history, Message(role="assistant", content=text),
            Message(role="user", content="Output of bash:\nREADME.md\nsetup.py\nsrc/\n\nGo on.")]


@pytest.mark.slow
def test_batched_and_cached_greedy_decode_is_token_exact(hf: HFModel) -> None:
    engine = _engine(hf, max_batch=8)
    try:
        histories = _first_turns(hf)
        for turn in range(2):
            prompts = [hf.prompt_ids(h) for h in histories]
            futures = [engine.submit(ids, 32, stop_ids=hf._stop_ids) for ids in prompts]
            got = [f.result(timeout=300) for f in futures]
            assert got == [_reference_decode(hf, ids, 32) for ids in prompts], f"turn {turn}"
            histories = [_next_turn(hf, h, *g) for h, g in zip(histories, got, strict=True)]
        assert engine.stats["max_batch"] > 1  # the calls really shared steps
        assert engine.stats["reused_tokens"] > engine.stats["prefill_tokens"] / 2  # turn 2 ran mostly new tokens
    finally:
        engine.close()


@pytest.mark.slow
def test_batch_of_one_with_and_without_reuse_matches_the_reference(hf: HFModel) -> None:
    plain = _engine(hf, max_batch=1, cache_bytes=0)
    cached = _engine(hf, max_batch=1)
    try:
        history = _first_turns(hf)[0]
        for _ in range(3):
            ids = hf.prompt_ids(history)
            want = _reference_decode(hf, ids, 24)
            assert plain.generate(ids, 24, stop_ids=hf._stop_ids) == want
            assert cached.generate(ids, 24, stop_ids=hf._stop_ids) == want
            history = _next_turn(hf, history, *want)
        assert plain.stats["reused_tokens"] == 0 and len(plain.prefix_cache) == 0
        assert cached.stats["reused_tokens"] > 0
    finally:
        plain.close()
        cached.close()


@pytest.mark.slow
def test_stop_ids_max_new_and_sampling_are_per_request(hf: HFModel) -> None:
    ids = [hf.prompt_ids(h) for h in _first_turns(hf)[:4]]
    free, _ = _reference_decode(hf, ids[1], 12, stop_ids=set())
    stop_at = {free[4]}  # a token the second request reaches at its fifth step
    want = [_reference_decode(hf, ids[0], 3),
            _reference_decode(hf, ids[1], 12, stop_ids=stop_at),
            _reference_decode(hf, ids[2], 12, temperature=1.0, seed=11),
            _reference_decode(hf, ids[3], 20)]
    assert want[0][1] == "length" and len(want[0][0]) == 3
    assert want[1][1] == "stop" and want[1][0][-1] in stop_at
    engine = _engine(hf, max_batch=4)
    try:
        futures = [engine.submit(ids[0], 3, stop_ids=hf._stop_ids),
                   engine.submit(ids[1], 12, stop_ids=stop_at),
                   engine.submit(ids[2], 12, temperature=1.0, seed=11, stop_ids=hf._stop_ids),
                   engine.submit(ids[3], 20, stop_ids=hf._stop_ids)]
        assert [f.result(timeout=300) for f in futures] == want
    finally:
        engine.close()


@pytest.mark.slow
def test_cancelled_request_leaves_the_others_right(hf: HFModel) -> None:
    ids = [hf.prompt_ids(h) for h in _first_turns(hf)[:3]]
    engine = _engine(hf, max_batch=4)
    try:
        futures = [engine.submit(i, 24, stop_ids=set()) for i in ids]
        futures[1].cancel()
        with pytest.raises(CancelledError):
            futures[1].result()
        assert futures[0].result(timeout=300) == _reference_decode(hf, ids[0], 24, stop_ids=set())
        assert futures[2].result(timeout=300) == _reference_decode(hf, ids[2], 24, stop_ids=set())
    finally:
        engine.close()


@pytest.mark.slow
def test_prefix_cache_memory_stays_bounded(hf: HFModel) -> None:
    cfg = hf._model.config
    per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 4  # keys + values, float32
    bound = 120 * per_token  # room for one or two short histories
    engine = _engine(hf, max_batch=4, cache_bytes=bound, cache_entries=3)
    try:
        histories = _first_turns(hf)
        for _ in range(2):
            futures = [engine.submit(hf.prompt_ids(h), 8, stop_ids=hf._stop_ids) for h in histories]
            results = [f.result(timeout=300) for f in futures]
            histories = [_next_turn(hf, h, *r) for h, r in zip(histories, results, strict=True)]
            assert 0 < engine.prefix_cache.nbytes <= bound and 0 < len(engine.prefix_cache) <= 3
    finally:
        engine.close()


@pytest.mark.slow
def test_concurrent_complete_calls_each_get_their_own_answer(hf: HFModel) -> None:
    histories = _first_turns(hf)

    async def all_at_once():
        return await asyncio.gather(*(hf.complete(h) for h in histories))

    completions = asyncio.run(all_at_once())
    for history, completion in zip(histories, completions, strict=True):
        ids = hf.prompt_ids(history)
        new, finish = _reference_decode(hf, ids, 32)
        stop = hf._action_stop()  # a reply ends once it holds an action (stop_after_action)
        cut = next((n for n in range(1, len(new) + 1) if stop(new[:n])), None)
        if cut is not None and not (finish == "stop" and cut == len(new)):
            new, finish = new[:cut], "action"
        text = hf.tokenizer.decode(new[:-1] if finish == "stop" else new, skip_special_tokens=True)
        assert (completion.text, completion.finish_reason) == (text, finish)
        assert completion.usage.prompt_tokens == len(ids) and completion.usage.completion_tokens == len(new)
    assert hf._engine.stats["max_batch"] > 1


@pytest.mark.slow
def test_stop_when_ends_a_request_at_the_token_it_says_and_keeps_it(hf: HFModel) -> None:
    ids = [hf.prompt_ids(h) for h in _first_turns(hf)[:2]]
    free, _ = _reference_decode(hf, ids[0], 10, stop_ids=set())
    engine = _engine(hf, max_batch=2)
    try:
        cut = engine.submit(ids[0], 10, stop_when=lambda new: len(new) >= 4)
        other = engine.submit(ids[1], 6, stop_ids=set())
        assert cut.result(timeout=300) == (free[:4], "action")
        assert other.result(timeout=300) == _reference_decode(hf, ids[1], 6, stop_ids=set())
    finally:
        engine.close()


def test_a_text_model_stops_decoding_once_its_reply_holds_an_action(hf: HFModel) -> None:
    reply = "Let me look.\n```bash\nls -la\n```\nThen I will read setup.py.\n```bash\ncat setup.py\n```"
    ids = hf.tokenizer(reply, add_special_tokens=False)["input_ids"]
    stop = hf._action_stop()
    ends = [n for n in range(1, len(ids) + 1) if stop(ids[:n])]
    assert hf.tokenizer.decode(ids[:ends[0]]).rstrip().endswith("ls -la\n```")  # the first closed fence
    xml = "<function=submit>\n</function> and more"
    xml_ids = hf.tokenizer(xml, add_special_tokens=False)["input_ids"]
    first = next(n for n in range(1, len(xml_ids) + 1) if stop(xml_ids[:n]))
    assert hf.tokenizer.decode(xml_ids[:first]).endswith("</function>")
    kept = HFModel("smollm2-135m", ModelOptions(max_tokens=32, stop_after_action=False))
    assert kept._action_stop() is None
