"""SFT records -> token ids and loss labels, masked per turn from the records' `train` flags.

Why our own labels: TRL's `assistant_only_loss` trains EVERY assistant turn,
but an OEC record's student turns are context only; just the expert's turns
(the flagged ones) may be learned. So the labels are built here and handed to
the trainer ready-made.

How: the conversation is rendered with the tokenizer's own chat template
prefix by prefix (messages[:1], messages[:2], ...) as TEXT, and the whole
conversation is tokenized once; each message boundary is mapped to a token
index through the fast tokenizer's offset mapping. That is only sound if every
prefix's text is a prefix of the next one's ("prefix-consistent"), which is
checked, not assumed: a template that rewrites earlier turns depending on later
ones raises `TemplateError` naming the template instead of silently shifting
the mask. When the text is consistent but one token straddles a turn boundary
(ChatML: an assistant turn that starts with blank lines merges with the
header's newline), the turn has no token span of its own; that depends on the
record, so the record is dropped and counted. The ids are by construction
exactly `apply_chat_template(messages)`: what the model sees at inference.
The cost is one tokenization plus one template render per message (tokenizing
every prefix, as this once did, took 35 s for a 61k-token record).

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

Messages are laid out exactly as the hf backend lays them out at inference
(`oec.models.chat_format`), in the record's student format: text turns, or
the template's native tool calls with `tools=`. Records longer than
`max_length` tokens are cut at turn boundaries into windows that each keep the
system prompt and task statement (`plan_windows`; or, with
`long_records="drop"`, dropped whole), and counted; a trained turn that fits
no window, and records with no supervised token, are counted too.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from oec.data.records import SFTMessage, SFTRecord
from oec.models.base import Message, ToolCall
from oec.models.chat_format import chat_dicts, render, supports_tools
from oec.models.hf import _END_OF_TURN_TOKENS

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
    windowed_records: int = 0  # records longer than max_length, cut into several windows (see plan_windows)
    dropped_turns_too_long: int = 0  # trained turns that fit no window (longer than max_length on their own)
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


def to_chat_messages(record: SFTRecord) -> list[dict[str, Any]]:
    """The record's messages as the chat dicts the hf backend would feed the template at inference.

    Text-format records: tool results get their tool's name back from the call they answer, as the live
    history has it ("Output of bash: ..."). Native-format records keep tool calls and tool turns structured,
    for the template's own layout (`oec.models.chat_format`).
    """
    messages: list[Message] = []
    tool_names: dict[str, str] = {}
    for index, m in enumerate(record.messages):
        message = _to_message(record.id, index, m)
        tool_names.update({c.id: c.name for c in message.tool_calls if c.id})
        if message.role == "tool" and message.tool_call_id in tool_names:
            message.name = tool_names[message.tool_call_id]
        messages.append(message)
    return chat_dicts(messages, native=record.student_format == "native")


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


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool, native: bool = False) -> str:
    return render(tokenizer, messages, native=native, generation_prompt=generation_prompt)


def _boundary(starts: list[int], ends: list[int], char: int) -> int | None:
    """The token index at which text position `char` starts, or None when a token straddles it.

    `starts`/`ends` are the tokens' character offsets in the full text (a fast tokenizer's offset mapping).
    Text before `char` is exactly tokens [0, k) when no token begins before `char` and ends after it.
    """
    k = bisect.bisect_left(starts, char)  # first token starting at or after char
    if k > 0 and ends[k - 1] > char:
        return None
    return k


def _encode_full(record: SFTRecord, chat: list[dict[str, Any]], tokenizer: Any, native: bool,
                 stop: set[int]) -> EncodedExample:
    """Ids and labels of the whole conversation: prefixes rendered as text, the full text tokenized ONCE.

    Every prefix's text must be a prefix of the next (checked); each message boundary is then mapped to a
    token index through the offset mapping, and must fall between tokens (else TokenBoundaryError). The cost
    is one tokenization of the record plus one template render per message, where tokenizing every prefix
    (what this replaced) grew with the square of the record's length.
    """
    trained = [i for i, m in enumerate(record.messages) if m.role == "assistant" and m.train]
    full_text = _render(tokenizer, chat, False, native)
    encoding = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    starts = [a for a, _ in encoding["offset_mapping"]]
    ends = [b for _, b in encoding["offset_mapping"]]
    texts = [_render(tokenizer, chat[: i + 1], False, native) for i in range(len(chat) - 1)] + [full_text]
    prompts = {i: _render(tokenizer, chat[:i], True, native) for i in trained}

    def token_at(char: int, what: str) -> int:
        k = _boundary(starts, ends, char)
        if k is None:
            at = bisect.bisect_left(starts, char) - 1
            raise TokenBoundaryError(
                f"record {record.id}, {what}: with {template_name(tokenizer)}, the tokens merge across the turn "
                f"boundary at token {at} ({tokenizer.decode(ids[at:at + 2])!r}; e.g. a turn that starts with "
                "blank lines), so the turn has no token span of its own")
        return k

    previous = ""
    for i, text in enumerate(texts):  # the text first: boundaries mean nothing in a text that was rewritten
        _check_text_prefix(tokenizer, record.id, previous, text, f"message {i} ({chat[i]['role']})")
        if i in prompts:
            _check_text_prefix(tokenizer, record.id, previous, prompts[i], f"the generation prompt before message {i}")
            _check_text_prefix(tokenizer, record.id, prompts[i], text,
                               f"assistant message {i} after its generation prompt")
        previous = text

    labels = [IGNORE_INDEX] * len(ids)
    for i, text in enumerate(texts):
        if i in prompts:
            prompt = prompts[i]
            first, last = token_at(len(prompt), f"message {i}"), token_at(len(text), f"message {i}")
            turn_ends = [j for j in range(first, last) if ids[j] in stop]
            if turn_ends:
                # through the end-of-turn token; the template's separator after it is not trained
                last = turn_ends[-1] + 1
            labels[first:last] = ids[first:last]
        elif i < len(texts) - 1:
            token_at(len(text), f"message {i}")
    return EncodedExample(record_id=record.id, input_ids=ids, labels=labels)


def _check_text_prefix(tokenizer: Any, record_id: str, shorter: str, longer: str, what: str) -> None:
    if not longer.startswith(shorter):
        at = next((i for i, (a, b) in enumerate(zip(shorter, longer)) if a != b), len(shorter))
        raise TemplateError(
            f"{template_name(tokenizer)} is not prefix-consistent (record {record_id}, {what}): the rendered text "
            f"differs from character {at} ({shorter[at:at + 40]!r} vs {longer[at:at + 40]!r}), so per-turn "
            "loss masks cannot be derived by rendering the conversation turn by turn. Use a template that renders "
            "earlier turns the same whatever follows them")


def _check_template(record: SFTRecord, tokenizer: Any) -> bool:
    """Whether the record is native; a native record needs a template that renders tools."""
    native = record.student_format == "native"
    if native and not supports_tools(getattr(tokenizer, "chat_template", None)):
        raise TemplateError(f"record {record.id} is in the native tool-calling format, but {template_name(tokenizer)} "
                            "does not render tools: export the run with --student-format text, or train a model "
                            "whose template supports tools")
    if not getattr(tokenizer, "is_fast", False):
        raise TemplateError(f"{template_name(tokenizer)}: the tokenizer is not a fast (Rust) tokenizer, so it has no "
                            "offset mapping to place turn boundaries with")
    return native


def encode_record(record: SFTRecord, tokenizer: Any, max_length: int,
                  stop_ids: set[int] | None = None) -> EncodedExample | None:
    """Token ids and labels for the whole record; None when it is longer than `max_length` tokens.

    Labels equal the ids on the content and end-of-turn token of every
    assistant turn with `train` set, and -100 everywhere else. The ids are
    exactly the template's rendering of the whole conversation tokenized, as
    the model sees it at inference. Raises TemplateError when the template
    does not render this record turn by turn consistently, and its subclass
    TokenBoundaryError when the text does but the tokenizer merges characters
    across a turn boundary (which depends on the record's content, not the
    template alone). `encode_windows` splits what this would refuse.
    """
    native = _check_template(record, tokenizer)
    stop = end_of_turn_ids(tokenizer) if stop_ids is None else stop_ids
    example = _encode_full(record, to_chat_messages(record), tokenizer, native, stop)
    return example if len(example) <= max_length else None


@dataclass
class Windows:
    """A record cut into examples that fit, and the trained turns no window could hold."""

    examples: list[EncodedExample]
    dropped_turns: int = 0  # trained turns longer than max_length even with no context before them


def encode_windows(record: SFTRecord, tokenizer: Any, max_length: int, stop_ids: set[int] | None = None) -> Windows:
    """The record as one example if it fits, else as windows cut at turn boundaries (see `plan_windows`)."""
    native = _check_template(record, tokenizer)
    stop = end_of_turn_ids(tokenizer) if stop_ids is None else stop_ids
    chat = to_chat_messages(record)
    full = _encode_full(record, chat, tokenizer, native, stop)
    if len(full) <= max_length:
        return Windows([full])
    sizes = _message_sizes(record, chat, tokenizer, native)
    out = Windows([])
    for number, window in enumerate(plan_windows(record, sizes, max_length)):
        if window is None:
            out.dropped_turns += 1
            continue
        example = _fit_window(record, window, number, tokenizer, native, stop, max_length)
        if example is None:
            out.dropped_turns += sum(window.supervised)
        else:
            out.examples.append(example)
    return out


def _message_sizes(record: SFTRecord, chat: list[dict[str, Any]], tokenizer: Any, native: bool) -> list[int]:
    """Token count of each message as rendered in place (consecutive prefix boundaries of the full text)."""
    texts = [_render(tokenizer, chat[: i + 1], False, native) for i in range(len(chat))]
    encoding = tokenizer(texts[-1], add_special_tokens=False, return_offsets_mapping=True)
    starts = [a for a, _ in encoding["offset_mapping"]]
    ends = [b for _, b in encoding["offset_mapping"]]
    bounds = [0] + [_boundary(starts, ends, len(t)) or 0 for t in texts]
    return [max(0, b - a) for a, b in zip(bounds, bounds[1:])]


@dataclass
class Window:
    """Messages [0, head) + [start, end] of a record, with the trained turns it supervises."""

    start: int
    end: int
    supervised: list[bool]  # per message of the window's body: supervised here

    def record(self, record: SFTRecord, head: int, number: int) -> SFTRecord:
        body = [m.model_copy(update={"train": (m.train and flag) if m.role == "assistant" else m.train})
                for m, flag in zip(record.messages[self.start:self.end + 1], self.supervised)]
        return record.model_copy(update={"id": f"{record.id}#w{number}",
                                         "messages": record.messages[:head] + body})


#: messages every window keeps: the system prompt and the task statement
WINDOW_HEAD = 2


def plan_windows(record: SFTRecord, sizes: list[int], max_length: int) -> list[Window | None]:
    """Cut a too-long record into windows, each the task (system + statement) plus a run of whole turns.

    Policy: the first trained turn not yet supervised gets a window that starts at the earliest assistant
    turn from which everything up to it fits in `max_length` (the most preceding context that fits); the
    window then runs on through later trained turns while they fit, and supervises them too. Each trained
    turn is supervised exactly once; earlier turns in a window are context. A trained turn that does not
    fit even right after the task statement gives None (counted, never silently lost). Windows begin at an
    assistant turn, so each is a well-formed conversation; what lies between the statement and the window
    is left out.
    """
    head = min(WINDOW_HEAD, len(record.messages))
    head_size = sum(sizes[:head])
    assistants = [i for i in range(head, len(record.messages)) if record.messages[i].role == "assistant"]
    trained = [i for i in assistants if record.messages[i].train]
    windows: list[Window | None] = []
    k = 0
    while k < len(trained):
        turn = trained[k]
        start = next((a for a in assistants if a <= turn and head_size + sum(sizes[a:turn + 1]) <= max_length), None)
        if start is None:
            windows.append(None)
            k += 1
            continue
        last = k
        while last + 1 < len(trained) and head_size + sum(sizes[start:trained[last + 1] + 1]) <= max_length:
            last += 1
        chosen = set(trained[k:last + 1])
        windows.append(Window(start, trained[last], [i in chosen for i in range(start, trained[last] + 1)]))
        k = last + 1
    return windows


def _fit_window(record: SFTRecord, window: Window, number: int, tokenizer: Any, native: bool, stop: set[int],
                max_length: int) -> EncodedExample | None:
    """Encode one window exactly; if the template makes it longer than planned, start it one turn later."""
    while True:
        sub = window.record(record, WINDOW_HEAD, number)
        example = _encode_full(sub, to_chat_messages(sub), tokenizer, native, stop)
        if len(example) <= max_length:
            return example
        later = [i for i in range(window.start + 1, window.end + 1) if record.messages[i].role == "assistant"]
        first_supervised = window.start + window.supervised.index(True)
        if not later or later[0] > first_supervised:
            return None
        cut = later[0] - window.start
        window = Window(later[0], window.end, window.supervised[cut:])


LongRecordPolicy = Literal["window", "drop"]


def encode_records(records: Iterable[SFTRecord], tokenizer: Any, max_length: int,
                   long_records: LongRecordPolicy = "window") -> EncodedDataset:
    """Encode every record; records longer than `max_length` are cut into windows (or dropped, counted).

    A template that is not prefix-consistent is an error (every record would
    be wrong); a record whose tokens merge across a turn boundary is left out
    and counted, since that depends on its content (a turn starting with
    blank lines), not on the template.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    if long_records not in ("window", "drop"):
        raise ValueError(f"long_records must be 'window' or 'drop', got {long_records!r}")
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
            if long_records == "window":
                windows = encode_windows(record, tokenizer, max_length, stop)
            else:
                example = encode_record(record, tokenizer, max_length, stop)
                windows = Windows([example] if example is not None else [])
        except TokenBoundaryError as exc:
            out.dropped_token_boundary += 1
            if len(out.boundary_errors) < MAX_KEPT_ERRORS:
                out.boundary_errors.append(str(exc))
            continue
        out.dropped_turns_too_long += windows.dropped_turns
        kept = [e for e in windows.examples if e.n_supervised > 0]
        if len(windows.examples) > 1:
            out.windowed_records += 1
        if not kept:
            out.dropped_too_long += 1 if windows.dropped_turns or not windows.examples else 0
            out.dropped_nothing_to_train += 0 if windows.dropped_turns or not windows.examples else 1
        out.examples.extend(kept)
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
