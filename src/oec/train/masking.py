"""SFT records -> token ids and loss labels, masked per turn from the records' `train` flags.

Why our own labels: TRL's `assistant_only_loss` trains EVERY assistant turn,
but an OEC record's student turns are context only; just the expert's turns
(the flagged ones) may be learned. So the labels are built here and handed to
the trainer ready-made.

How: the conversation is rendered with the tokenizer's own chat template
prefix by prefix (messages[:1], messages[:2], ...), and each message's tokens
are the difference between consecutive prefixes. That is only sound if every
prefix's tokens are a prefix of the next one's ("prefix-consistent"), which is
checked, not assumed: a template that rewrites earlier turns depending on later
ones raises `TemplateError` naming the template instead of silently shifting
the mask. When the text is consistent but the tokenizer merges characters
across a turn boundary (ChatML: an assistant turn that starts with blank
lines merges with the header's newline), the turn has no token span of its
own; that depends on the record, so the record is dropped and counted. The
last prefix is the whole conversation, so the ids are by construction exactly
`apply_chat_template(messages)`: what the model sees at inference.

For a trained assistant turn, the span after the template's generation prompt
(messages[:i] rendered with `add_generation_prompt=True`, e.g.
`<|im_start|>assistant\\n`) is what the model writes at inference: its content
and the end-of-turn token it stops on. Both are supervised. The header is not
(the template writes it), nor is anything the template puts AFTER the
end-of-turn token (ChatML's "\\n" after `<|im_end|>`): generation stops at that
token (see `oec.models.hf`), so the newline is never the model's to produce. A
template without any end-of-turn token in the turn has its whole turn trained,
and so does one with an empty generation prompt (Llama-2's `[/INST]` style,
where the assistant's text follows the user turn directly).

Messages are turned into chat dicts exactly as the hf backend does at
inference (`oec.models.hf.to_chat_dicts`), so training sees the same text.
Records longer than `max_length` tokens are dropped whole (never cut mid-turn)
and counted, as are records with no supervised token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from oec.data.records import SFTMessage, SFTRecord
from oec.models.base import Message, ToolCall
from oec.models.hf import _END_OF_TURN_TOKENS, to_chat_dicts

IGNORE_INDEX = -100
#: end-of-turn tokens of common chat templates: the very set the hf backend stops generating on
END_OF_TURN_TOKENS: tuple[str, ...] = tuple(_END_OF_TURN_TOKENS)
#: how many dropped-record messages an EncodedDataset keeps (the count is always exact)
MAX_KEPT_ERRORS = 10


class SFTDataError(ValueError):
    """A training data file that cannot be read; the message names file:line:field."""


class TemplateError(ValueError):
    """The chat template is not prefix-consistent, so per-turn masks cannot be derived from it."""


class TokenBoundaryError(TemplateError):
    """This record's text renders consistently, but its tokens merge across a turn boundary."""


@dataclass
class EncodedExample:
    """One record as token ids with labels (-100 where no loss is taken)."""

    record_id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def n_supervised(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class EncodedDataset:
    """The examples that will be trained, and what was left out and why."""

    examples: list[EncodedExample] = field(default_factory=list)
    records: int = 0  # records read
    dropped_too_long: int = 0
    dropped_nothing_to_train: int = 0
    dropped_token_boundary: int = 0  # tokens merged across a turn boundary (see TokenBoundaryError)
    boundary_errors: list[str] = field(default_factory=list)  # the first few, to show

    @property
    def supervised_tokens(self) -> int:
        return sum(e.n_supervised for e in self.examples)

    @property
    def total_tokens(self) -> int:
        return sum(len(e) for e in self.examples)

    @property
    def longest(self) -> int:
        return max((len(e) for e in self.examples), default=0)


# ---------------------------------------------------------------- reading


def load_sft_file(path: Path) -> list[SFTRecord]:
    """SFTRecord JSON lines (`oec export --format messages`); a bad line is an error naming file:line:field."""
    path = Path(path)
    if not path.is_file():
        raise SFTDataError(f"{path}: no such file")
    records: list[SFTRecord] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = SFTRecord.model_validate_json(line)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in error["loc"]) or "(line)"
                more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
                raise SFTDataError(f"{path}:{number}:{where}: {error['msg']}{more}; "
                                   "expected an SFT record as written by `oec export --format messages`") from None
            for index, message in enumerate(record.messages):
                if message.train and message.role != "assistant":
                    raise SFTDataError(f"{path}:{number}:messages.{index}.train: only assistant turns can be "
                                       f"trained (this one is {message.role!r})")
            if not record.messages:
                raise SFTDataError(f"{path}:{number}:messages: the record has no messages")
            records.append(record)
    if not records:
        raise SFTDataError(f"{path}: no records (an empty file?)")
    return records


def to_chat_messages(record: SFTRecord) -> list[dict[str, str]]:
    """The record's messages as the chat dicts the hf backend would feed the template at inference.

    Tool results get their tool's name back from the call they answer, as
    the live history has it ("Output of bash: ..."), so native-format records
    render like the prompts the backend saw.
    """
    messages: list[Message] = []
    tool_names: dict[str, str] = {}
    for index, m in enumerate(record.messages):
        message = _to_message(record.id, index, m)
        tool_names.update({c.id: c.name for c in message.tool_calls if c.id})
        if message.role == "tool" and message.tool_call_id in tool_names:
            message.name = tool_names[message.tool_call_id]
        messages.append(message)
    return to_chat_dicts(messages)


def _to_message(record_id: str, index: int, m: SFTMessage) -> Message:
    calls = []
    for call in m.tool_calls:  # OpenAI layout: {"id", "type", "function": {"name", "arguments": "<json>"}}
        fn = call.get("function", call)
        arguments = fn.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise SFTDataError(f"record {record_id}: messages.{index}.tool_calls: arguments are not JSON "
                                   f"({exc.msg})") from None
        calls.append(ToolCall(id=str(call.get("id", "")), name=str(fn.get("name", "")), arguments=arguments))
    return Message(role=m.role, content=m.content, tool_calls=calls, tool_call_id=m.tool_call_id)


# ---------------------------------------------------------------- encoding


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """Token ids that end an assistant turn at inference: EOS plus the common templates' end-of-turn tokens."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return ids


def template_name(tokenizer: Any) -> str:
    """How to name a tokenizer's chat template in an error message."""
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    return f"the chat template of {name}"


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _tokenize(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    # the template already wrote the special tokens (BOS, turn markers): add none
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _check_prefix(tokenizer: Any, record_id: str, shorter: tuple[str, list[int]], longer: tuple[str, list[int]],
                  what: str) -> None:
    """Raise unless `shorter` renders (text) and tokenizes (ids) as a prefix of `longer`."""
    (short_text, short_ids), (long_text, long_ids) = shorter, longer
    if not long_text.startswith(short_text):
        at = next((i for i, (a, b) in enumerate(zip(short_text, long_text)) if a != b), len(short_text))
        raise TemplateError(
            f"{template_name(tokenizer)} is not prefix-consistent (record {record_id}, {what}): the rendered text "
            f"differs from character {at} ({short_text[at:at + 40]!r} vs {long_text[at:at + 40]!r}), so per-turn "
            "loss masks cannot be derived by rendering the conversation turn by turn. Use a template that renders "
            "earlier turns the same whatever follows them")
    if long_ids[: len(short_ids)] != short_ids:
        at = next((i for i, (a, b) in enumerate(zip(short_ids, long_ids)) if a != b), len(long_ids))
        raise TokenBoundaryError(
            f"record {record_id}, {what}: with {template_name(tokenizer)}, the tokens merge across the turn "
            f"boundary at token {at} ({tokenizer.decode(short_ids[at:at + 4])!r} vs "
            f"{tokenizer.decode(long_ids[at:at + 4])!r}; e.g. a turn that starts with blank lines), so the turn "
            "has no token span of its own")


def encode_record(record: SFTRecord, tokenizer: Any, max_length: int,
                  stop_ids: set[int] | None = None) -> EncodedExample | None:
    """Token ids and labels for one record; None when it is longer than `max_length` tokens (see module doc).

    Labels equal the ids on the content and end-of-turn token of every
    assistant turn with `train` set, and -100 everywhere else. Raises
    TemplateError when the template does not render this record turn by turn
    consistently, and its subclass TokenBoundaryError when the text does but
    the tokenizer merges characters across a turn boundary (which depends on
    the record's content, not the template alone).
    """
    chat = to_chat_messages(record)
    full_text = _render(tokenizer, chat, False)
    full = _tokenize(tokenizer, [full_text])[0]
    if len(full) > max_length:
        return None
    stop = end_of_turn_ids(tokenizer) if stop_ids is None else stop_ids
    trained = [i for i, m in enumerate(record.messages) if m.role == "assistant" and m.train]
    # every prefix, plus the generation prompt before each trained turn, in one batched tokenizer call
    texts = [_render(tokenizer, chat[: i + 1], False) for i in range(len(chat) - 1)]
    texts += [_render(tokenizer, chat[:i], True) for i in trained]
    tokenized = _tokenize(tokenizer, texts) if texts else []
    n = len(chat) - 1
    prefixes = list(zip(texts[:n], tokenized[:n])) + [(full_text, full)]
    prompts = dict(zip(trained, zip(texts[n:], tokenized[n:])))

    labels = [IGNORE_INDEX] * len(full)
    previous: tuple[str, list[int]] = ("", [])
    for i, current in enumerate(prefixes):
        _check_prefix(tokenizer, record.id, previous, current, f"message {i} ({chat[i]['role']})")
        if i in prompts:
            prompt = prompts[i]
            _check_prefix(tokenizer, record.id, previous, prompt, f"the generation prompt before message {i}")
            _check_prefix(tokenizer, record.id, prompt, current, f"assistant message {i} after its generation prompt")
            ids = current[1]
            start, end = len(prompt[1]), len(ids)
            ends = [j for j in range(start, end) if ids[j] in stop]
            if ends:
                end = ends[-1] + 1  # through the end-of-turn token; the template's separator after it is not trained
            labels[start:end] = ids[start:end]
        previous = current
    return EncodedExample(record_id=record.id, input_ids=full, labels=labels)


def encode_records(records: Iterable[SFTRecord], tokenizer: Any, max_length: int) -> EncodedDataset:
    """Encode every record; too-long and nothing-to-train records are left out and counted.

    A template that is not prefix-consistent is an error (every record would
    be wrong); a record whose tokens merge across a turn boundary is left out
    and counted, since that depends on its content (a turn starting with
    blank lines), not on the template.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(f"{template_name(tokenizer)} is missing: the tokenizer has no chat template, so "
                            "conversations cannot be rendered as the model will see them")
    stop = end_of_turn_ids(tokenizer)
    out = EncodedDataset()
    for record in records:
        out.records += 1
        if not any(m.role == "assistant" and m.train for m in record.messages):
            out.dropped_nothing_to_train += 1
            continue
        try:
            example = encode_record(record, tokenizer, max_length, stop)
        except TokenBoundaryError as exc:
            out.dropped_token_boundary += 1
            if len(out.boundary_errors) < MAX_KEPT_ERRORS:
                out.boundary_errors.append(str(exc))
            continue
        if example is None:
            out.dropped_too_long += 1
        elif example.n_supervised == 0:
            out.dropped_nothing_to_train += 1
        else:
            out.examples.append(example)
    return out


def supervised_spans(labels: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) runs of supervised positions: the trained turns, for inspection and tests."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, label in enumerate([*labels, IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            spans.append((start, i))
            start = None
    return spans
