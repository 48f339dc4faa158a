"""A decoding engine for the local transformers backend: token ids in, token ids out.

Why it exists: an agent rollout calls the student again and again with a
history that only grows, and several rollouts call it at once. Decoding each
call alone re-encodes the whole history every time and runs one sequence per
forward pass, which on CPU leaves most of a pass's cost (reading the weights)
shared by nobody. This engine does two things about it, on one worker thread:

- **Prefix reuse.** When a call ends, the KV cache of its prompt + completion
  is kept in a small LRU (`PrefixCache`, bounded in bytes and entries). The
  next call finds the entry with the longest common token prefix, crops it to
  that prefix and runs only the new suffix through the model.
- **Batching.** Requests that arrive while others decode are prefilled one at
  a time (each on its own reused prefix) and then join the running batch: one
  forward pass per step decodes every active sequence. Sequences have caches
  of different lengths, so the batch cache is left-padded, with an attention
  mask over the padding and explicit position ids; each sequence has its own
  max_new, stop ids, temperature and seeded generator, and leaves the batch
  (its padding trimmed away) as soon as it ends.

Greedy decoding picks the argmax of each sequence's own logits and sampling
draws from each sequence's own `torch.Generator`, so what a request gets does
not depend on which others shared its steps, up to float rounding: a padded,
batched or suffix-only pass sums in another order than a lone full pass. A
sequence alone in the batch is run without mask or position ids, exactly as a
lone decode. Only full-attention `DynamicLayer` caches are reused or batched;
any other cache layout (sliding windows, ...) makes the engine decode one
request at a time without reuse, which is always correct.
"""

from __future__ import annotations

import atexit
import collections
import logging
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

#: default bound of the prefix cache (about 22k tokens of SmolLM2-135M, 46 KiB per token)
DEFAULT_CACHE_BYTES = 1 << 30
DEFAULT_CACHE_ENTRIES = 64
DEFAULT_MAX_BATCH = 8

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), each [batch, heads, seq, head_dim]


@dataclass
class GenRequest:
    """One call: the prompt's token ids and how to continue it."""

    ids: list[int]
    max_new: int
    temperature: float = 0.0
    seed: int | None = None
    stop_ids: frozenset[int] = frozenset()
    #: asked after each new token with the new ids so far: True ends the request ("action"), that token kept
    stop_when: Callable[[list[int]], bool] | None = None
    future: Future = field(default_factory=Future)


@dataclass
class _Seq:
    """A request being decoded: its tokens so far and its own sampler."""

    req: GenRequest
    new: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None
    pending: int = 0  # the last sampled token, not yet run through the model

    @property
    def cached_tokens(self) -> list[int]:
        """The tokens whose keys and values are in this sequence's cache (all but the pending one)."""
        return self.req.ids + self.new[:-1]


class PrefixCache:
    """An LRU of KV caches keyed by the token ids they hold, bounded in bytes and in entries.

    An entry whose tokens are a prefix of a newer entry's is dropped when the
    newer one is stored: a rollout's previous call is superseded by its next.
    Stored tensors are never modified; `lookup` hands out views that the
    caller copies into a fresh cache.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[int, tuple[torch.Tensor, Layers, int]] = collections.OrderedDict()
        self._next_key = 0
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: list[int], limit: int) -> tuple[int, Layers | None]:
        """(n, layers cropped to n) for the entry sharing the longest prefix with `ids`, n <= limit; (0, None) if none."""
        if not self._entries or limit <= 0:
            return 0, None
        query = torch.tensor(ids, dtype=torch.long)
        best_key, best_n = None, 0
        for key, (tokens, _, _) in self._entries.items():
            n = _common_prefix(tokens, query)
            if n > best_n:
                best_key, best_n = key, n
        best_n = min(best_n, limit)
        if best_key is None or best_n <= 0:
            return 0, None
        self._entries.move_to_end(best_key)
        layers = self._entries[best_key][1]
        return best_n, [(k[:, :, :best_n], v[:, :, :best_n]) for k, v in layers]

    def store(self, tokens: list[int], layers: Layers) -> None:
        """Keep `layers` (which must own their memory) for `tokens`, then evict down to the bounds."""
        size = sum(k.nbytes + v.nbytes for k, v in layers)
        if size > self.max_bytes or self.max_entries <= 0 or not tokens:
            return
        key_tokens = torch.tensor(tokens, dtype=torch.long)
        for key, (old, _, old_size) in list(self._entries.items()):
            if len(old) <= len(key_tokens) and _common_prefix(old, key_tokens) == len(old):
                del self._entries[key]
                self.nbytes -= old_size
        self._entries[self._next_key] = (key_tokens, layers, size)
        self._next_key += 1
        self.nbytes += size
        while self.nbytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, (_, _, old_size) = self._entries.popitem(last=False)
            self.nbytes -= old_size


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """Length of the longest common prefix of two 1-d token tensors."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0]) if len(differ) else n


class HFEngine:
    """Decodes requests for one causal LM on a worker thread of its own, batched, reusing cached prefixes.

    `max_batch` 1 decodes one request at a time; `cache_bytes` 0 turns prefix
    reuse off (both off is the plain decode: full prompt, then one token per
    pass). `lock`, when given, is held around every forward pass so that
    other users of the model (scoring) interleave between steps.
    """

    def __init__(self, model: Any, *, max_batch: int = DEFAULT_MAX_BATCH, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 cache_entries: int = DEFAULT_CACHE_ENTRIES, lock: threading.Lock | None = None,
                 name: str = "oec-hf-engine") -> None:
        self.model = model
        self.max_batch = max(1, max_batch)
        self.prefix_cache = PrefixCache(cache_bytes, cache_entries if cache_bytes > 0 else 0)
        self._lock = lock or threading.Lock()
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._batchable: bool | None = None  # known after the first prefill
        # the running batch: its cache, each row's sequence and left padding
        self._cache: Any = None
        self._seqs: list[_Seq] = []
        self._pad: list[int] = []
        self.stats = collections.Counter()

    # -- public ----------------------------------------------------------------------------------

    def submit(self, ids: list[int], max_new: int, *, temperature: float = 0.0, seed: int | None = None,
               stop_ids: frozenset[int] | set[int] = frozenset(),
               stop_when: Callable[[list[int]], bool] | None = None) -> Future:
        """Queue a request; the future gets (new token ids, "stop" | "action" | "length"), the stop token included.

        "action": `stop_when` said the new tokens are enough (a complete tool call: the rest of a reply is
        never run, so decoding it only costs time). Cancelling the future drops the request, also mid-decode.
        """
        if not ids:
            raise ValueError("a request needs at least one prompt token")
        req = GenRequest(list(ids), int(max_new), float(temperature), seed, frozenset(stop_ids), stop_when)
        self._ensure_thread()
        self._queue.put(req)
        return req.future

    def generate(self, ids: list[int], max_new: int, **kwargs: Any) -> tuple[list[int], str]:
        """Blocking `submit`."""
        return self.submit(ids, max_new, **kwargs).result()

    def close(self) -> None:
        """Stop the worker after the requests already queued (a later `submit` starts a new one)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
            atexit.unregister(self.close)

    # -- the worker ------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
                # a daemon thread frozen inside torch at interpreter exit can abort the process
                atexit.register(self.close)

    def _run(self) -> None:
        """Admit waiting requests up to `max_batch`, then run one step for the batch; repeat until closed."""
        closing = False
        while True:
            block = not self._seqs
            while not closing and len(self._seqs) < self._capacity():
                try:
                    req = self._queue.get(block=block)
                except queue.Empty:
                    break
                if req is None:
                    closing = True
                    break
                block = False
                self._admit(req)
            if self._seqs:
                self._step()
            elif closing:
                return

    def _capacity(self) -> int:
        return self.max_batch if self._batchable is not False else 1

    def _admit(self, req: GenRequest) -> None:
        """Prefill one request on its longest cached prefix, sample its first token, add it to the batch."""
        if req.future.cancelled():
            return
        if req.max_new <= 0:
            _resolve(req, [], "length")
            return
        seq = _Seq(req)
        if req.seed is not None:
            seq.generator = torch.Generator(device=self.model.device)
            seq.generator.manual_seed(req.seed)
        try:
            logits, cache = self._prefill(req.ids)
        except Exception as exc:  # noqa: BLE001 - torch failures belong to this request only
            _fail(req, exc)
            return
        if self._sample(seq, logits):
            self._retire(seq, cache, 0)
            return
        self._join(seq, cache)

    def _prefill(self, ids: list[int]) -> tuple[torch.Tensor, Any]:
        """Logits after `ids` and the cache of `ids`, running only what the prefix cache lacks."""
        from transformers import DynamicCache

        n, layers = self.prefix_cache.lookup(ids, len(ids) - 1)
        cache = DynamicCache(ddp_cache_data=layers) if layers else None
        with self._lock, torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids[n:]], device=self.model.device), cache=cache,
                             use_cache=True, logits_to_keep=1)
        if self._batchable is None:
            from transformers.cache_utils import DynamicLayer

            self._batchable = all(type(layer) is DynamicLayer for layer in out.cache.layers)
            if not self._batchable:
                log.info("%s: cache layout %s, decoding one request at a time without prefix reuse", self._name,
                         {type(layer).__name__ for layer in out.cache.layers})
        self.stats["prefill_tokens"] += len(ids) - n
        self.stats["reused_tokens"] += n
        return out.logits[0, -1], out.cache

    def _step(self) -> None:
        """One forward pass for every active sequence, then sampling and retiring per row."""
        self._drop_cancelled()
        if not self._seqs:
            return
        device = self.model.device
        tokens = torch.tensor([[s.pending] for s in self._seqs], device=device)
        kwargs: dict[str, Any] = {}
        if len(self._seqs) > 1 or self._pad[0]:
            length = self._cache.get_seq_length()
            pad = torch.tensor(self._pad, device=device)
            kwargs["attention_mask"] = (torch.arange(length + 1, device=device)[None, :] >= pad[:, None]).long()
            kwargs["position_ids"] = (length - pad)[:, None]
        try:
            with self._lock, torch.inference_mode():
                out = self.model(input_ids=tokens, cache=self._cache, use_cache=True, logits_to_keep=1, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the batch is lost; every request in it fails
            self._fail_all(exc)
            return
        self._cache = out.cache
        self.stats["steps"] += 1
        self.stats["batched_tokens"] += len(self._seqs)
        done = [i for i, seq in enumerate(self._seqs) if self._sample(seq, out.logits[i, -1])]
        if done:
            for i in done:
                self._retire(self._seqs[i], self._cache, i)
            self._keep([i for i in range(len(self._seqs)) if i not in set(done)])

    def _sample(self, seq: _Seq, logits: torch.Tensor) -> bool:
        """Pick the next token of `seq` (greedy or from its own generator); True when the sequence is done."""
        logits = logits.float()
        if seq.generator is None or seq.req.temperature <= 0:
            token = int(torch.argmax(logits))
        else:
            probs = torch.softmax(logits / seq.req.temperature, dim=-1)
            token = int(torch.multinomial(probs, 1, generator=seq.generator))
        seq.new.append(token)
        seq.pending = token
        if token in seq.req.stop_ids:
            _resolve(seq.req, seq.new, "stop")
            return True
        if seq.req.stop_when is not None and seq.req.stop_when(seq.new):
            _resolve(seq.req, seq.new, "action")
            return True
        if len(seq.new) >= seq.req.max_new:
            _resolve(seq.req, seq.new, "length")
            return True
        return False

    # -- the batch cache ---------------------------------------------------------------------------

    def _join(self, seq: _Seq, cache: Any) -> None:
        """Add a prefilled sequence (a batch-of-one cache) to the batch, left-padding whichever is shorter."""
        self.stats["max_batch"] = max(self.stats["max_batch"], len(self._seqs) + 1)
        if self._cache is None:
            self._cache, self._seqs, self._pad = cache, [seq], [0]
            return
        old, new = self._cache.get_seq_length(), cache.get_seq_length()
        length = max(old, new)
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, length - old), _pad_left(theirs.keys, length - new)])
            mine.values = torch.cat([_pad_left(mine.values, length - old), _pad_left(theirs.values, length - new)])
        self._pad = [p + length - old for p in self._pad] + [length - new]
        self._seqs.append(seq)

    def _keep(self, rows: list[int]) -> None:
        """Keep only `rows` of the batch and trim the padding columns no row needs any more."""
        if not rows:
            self._cache, self._seqs, self._pad = None, [], []
            return
        self._seqs = [self._seqs[i] for i in rows]
        pad = [self._pad[i] for i in rows]
        trim = min(pad)
        index = torch.tensor(rows, device=self.model.device)
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, trim:]
            layer.values = layer.values.index_select(0, index)[:, :, trim:]
        self._pad = [p - trim for p in pad]

    def _retire(self, seq: _Seq, cache: Any, row: int) -> None:
        """Keep a finished sequence's own cache (its row, without padding, copied) for later prefixes."""
        if self.prefix_cache.max_entries <= 0 or not self._batchable:
            return
        pad = self._pad[row] if cache is self._cache and self._seqs else 0
        layers = [(layer.keys[row:row + 1, :, pad:].clone(), layer.values[row:row + 1, :, pad:].clone())
                  for layer in cache.layers]
        tokens = seq.cached_tokens
        if layers and layers[0][0].shape[2] != len(tokens):  # never store a cache under the wrong tokens
            log.warning("%s: cache holds %d tokens, expected %d; not kept", self._name, layers[0][0].shape[2],
                        len(tokens))
            return
        self.prefix_cache.store(tokens, layers)

    def _drop_cancelled(self) -> None:
        rows = [i for i, seq in enumerate(self._seqs) if not seq.req.future.cancelled()]
        if len(rows) < len(self._seqs):
            self.stats["cancelled"] += len(self._seqs) - len(rows)
            self._keep(rows)

    def _fail_all(self, exc: BaseException) -> None:
        for seq in self._seqs:
            _fail(seq.req, exc)
        self._cache, self._seqs, self._pad = None, [], []


def _pad_left(t: torch.Tensor, n: int) -> torch.Tensor:
    """`t` ([batch, heads, seq, dim]) with n zero columns before its sequence axis."""
    if n <= 0:
        return t
    return torch.cat([t.new_zeros(t.shape[0], t.shape[1], n, t.shape[3]), t], dim=2)


def _resolve(req: GenRequest, new: list[int], finish: str) -> None:
    try:
        if not req.future.cancelled():
            req.future.set_result((list(new), finish))
    except InvalidStateError:  # cancelled meanwhile
        pass


def _fail(req: GenRequest, exc: BaseException) -> None:
    try:
        if not req.future.cancelled():
            req.future.set_exception(exc)
    except InvalidStateError:
        pass
