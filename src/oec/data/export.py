"""Export kept trajectories as loss-masked fine-tuning data for the STUDENT.

Every record is rendered with the student's action format and the student's
system prompt (`oec.agent.history.render`), whoever acted: an expert that
spoke native tool calls is shown to, and trained into, a text-format student
as text actions. Which assistant turns are trained is derived from each
step's recorded source, never from a separate switch index:

- oec: expert turns only; the student's own turns stay as context (masked);
- bc and on-policy: every turn;
- a turn without a valid action (format error) is never trained, whatever
  the strategy: it stays as context, with the error the model was shown.

Nothing after the last trained turn can change the loss, so a record ends
there. A record with no trained turn at all (an OEC rollout in which the
student submitted before the switch) is skipped and counted.

Output formats:

- messages: SFTRecord JSON lines (oec's own; per-message `train` flags);
- openai: OpenAI chat fine-tuning JSONL, `"weight": 0|1` on every assistant
  message (the flags above), tools listed for native-format students;
- sharegpt: LLaMA-Factory's ShareGPT layout. Released LLaMA-Factory has no
  per-turn loss mask (only `train_on_prompt` and `mask_history`, which trains
  the LAST assistant turn only; per-turn masks exist as unmerged pull
  requests). So each record becomes one example per trained turn, cut right
  after it, and the dataset_info.json entry written beside the file says to
  train with `mask_history: true`: the supervised tokens are then exactly the
  trained turns, at the cost of repeating prefixes (data grows with turns).

Mixtures (`--mix oec=3000,bc=1000`) draw whole records per strategy, seeded
and without replacement, from records sorted by id (collection order varies
between runs; ids do not).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from oec.agent.formats import ActionFormat
from oec.agent.history import Step, render
from oec.agent.prompts import SYSTEM_PROMPTS
from oec.agent.tools import TOOLS
from oec.collect.records import Trajectory
from oec.data.records import SFTMessage, SFTRecord
from oec.models.base import Message
from oec.tasks.model import Task

ExportFormat = Literal["messages", "openai", "sharegpt"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("messages", "openai", "sharegpt")
#: strategies whose every valid turn is trained; oec trains expert turns only
TRAIN_ALL_TURNS = frozenset({"bc", "on-policy"})
KNOWN_STRATEGIES = ("bc", "on-policy", "oec")


class ExportError(ValueError):
    """Input that cannot be exported; the message says what to change."""


# ---------------------------------------------------------------- reading and writing


@dataclass
class TrajectoryFile:
    trajectories: list[Trajectory]
    torn_tail: bool = False  # the last line had no newline (a writer still running, or killed): skipped


def read_trajectories(path: Path) -> TrajectoryFile:
    """Read a trajectories JSONL file; a bad line is an error naming file:line.

    A last line without its newline is a write in progress (or a killed
    writer): it is skipped and flagged rather than parsed, so a run can be
    filtered while it is still collecting, and the file is never modified.
    """
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    data = path.read_text(encoding="utf-8")
    torn = bool(data) and not data.endswith("\n")
    lines = data.split("\n")
    if torn:
        lines = lines[:-1]
    out: list[Trajectory] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(Trajectory.model_validate_json(line))
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise ExportError(f"{path}:{number}: not a trajectory record: {first}") from exc
    return TrajectoryFile(out, torn_tail=torn)


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_jsonl_atomic(path: Path, rows: Iterable[str | dict[str, Any]]) -> int:
    """Write one JSON value per line atomically; strings are taken as already-serialized lines."""
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


# ---------------------------------------------------------------- trajectory -> SFT record


def is_trained(step: Step, strategy: str, train_student: bool = False) -> bool:
    """Whether this step's assistant turn is supervised for a rollout of `strategy` (`train_student`: an OEC
    rollout's student turns too, the unmasked ablation)."""
    if step.action is None:
        return False
    if strategy == "oec":
        return step.source == "expert" or train_student
    if strategy in TRAIN_ALL_TURNS:
        return True
    raise ExportError(f"unknown strategy {strategy!r}: cannot tell which turns to train (expected {', '.join(KNOWN_STRATEGIES)})")


def _openai_tool_calls(message: Message) -> list[dict[str, Any]]:
    return [
        {"id": call.id, "type": "function",
         "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
        for call in message.tool_calls
    ]


def to_sft_record(trajectory: Trajectory, task: Task, student_format: ActionFormat = "text",
                  train_student: bool = False) -> SFTRecord:
    """The trajectory as the student would see it, each assistant turn flagged train or not (see module doc)."""
    if task.instance_id != trajectory.instance_id:
        raise ExportError(f"{trajectory.id}: task {task.instance_id!r} is not the trajectory's {trajectory.instance_id!r}")
    rendered = render(task, trajectory.steps, student_format, SYSTEM_PROMPTS[student_format])
    head, body = rendered[:2], rendered[2:]
    if len(body) != 2 * len(trajectory.steps):
        raise ExportError(f"{trajectory.id}: rendering gave {len(body)} messages for {len(trajectory.steps)} steps")

    messages = [SFTMessage(role=m.role, content=m.content) for m in head]
    last_trained = None
    for step, assistant, answer in zip(trajectory.steps, body[0::2], body[1::2]):
        train = is_trained(step, trajectory.strategy, train_student)
        messages.append(SFTMessage(
            role="assistant", content=assistant.content, train=train, source=step.source,
            tool_calls=_openai_tool_calls(assistant) if student_format == "native" else [],
            format_error=step.action is None,
        ))
        if train:
            last_trained = len(messages)
        messages.append(SFTMessage(role=answer.role, content=answer.content, tool_call_id=answer.tool_call_id))
    if last_trained is not None:
        messages = messages[:last_trained]  # nothing after the last trained turn changes the loss
    return SFTRecord(
        id=trajectory.id, instance_id=trajectory.instance_id, strategy=trajectory.strategy,
        switch_step=trajectory.switch_step, student_format=student_format, messages=messages,
        sample_index=trajectory.sample_index,
        format_error_turns=sum(m.format_error for m in messages if m.role == "assistant"),
    )


def infer_student_format(trajectories: Iterable[Trajectory]) -> ActionFormat | None:
    """The format the student spoke in these rollouts (None when no student acted, e.g. BC only)."""
    seen = {step.format for t in trajectories for step in t.steps if step.source == "student"}
    if len(seen) > 1:
        raise ExportError(f"the student spoke several formats in this run ({', '.join(sorted(seen))}); "
                          "choose one with --student-format")
    return next(iter(seen), None)


@dataclass
class BuiltRecords:
    records: list[SFTRecord]
    untrainable: Counter[str] = field(default_factory=Counter)  # per strategy: records with no trained turn


def build_records(trajectories: Sequence[Trajectory], tasks: Mapping[str, Task],
                  student_format: ActionFormat = "text", train_student: bool = False) -> BuiltRecords:
    """SFT records for every trajectory; records with nothing to train are left out and counted."""
    missing = sorted({t.instance_id for t in trajectories} - set(tasks))
    if missing:
        listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ExportError(f"no task for instance(s) {listed}: the task prompt cannot be rendered without it; "
                          "pass the task file the run was collected from with --tasks")
    built = BuiltRecords(records=[])
    for trajectory in trajectories:
        record = to_sft_record(trajectory, tasks[trajectory.instance_id], student_format, train_student)
        if record.trained_turns:
            built.records.append(record)
        else:
            built.untrainable[record.strategy] += 1
    return built


# ---------------------------------------------------------------- mixtures


def parse_mix(spec: str) -> dict[str, int]:
    """`oec=3000,bc=1000,on-policy=0` -> {"oec": 3000, "bc": 1000, "on-policy": 0}."""
    mix: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ExportError(f"--mix {spec!r}: expected SOURCE=COUNT pairs like oec=3000,bc=1000")
        if name not in KNOWN_STRATEGIES:
            raise ExportError(f"--mix: unknown source {name!r} (expected {', '.join(KNOWN_STRATEGIES)})")
        if name in mix:
            raise ExportError(f"--mix: source {name!r} given twice")
        try:
            mix[name] = int(count)
        except ValueError:
            raise ExportError(f"--mix: {name}={count!r} is not a whole number") from None
        if mix[name] < 0:
            raise ExportError(f"--mix: {name}={mix[name]} is negative")
    if not mix:
        raise ExportError("--mix: no sources given")
    return mix


@dataclass
class MixResult:
    records: list[SFTRecord]
    requested: dict[str, int]
    available: dict[str, int]
    drawn: dict[str, int]

    @property
    def short(self) -> dict[str, tuple[int, int]]:
        """Sources that had fewer records than asked: name -> (asked, available)."""
        return {s: (n, self.available.get(s, 0)) for s, n in self.requested.items() if self.available.get(s, 0) < n}


def draw_mixture(records: Sequence[SFTRecord], mix: Mapping[str, int] | None, seed: int,
                 allow_short: bool = False) -> MixResult:
    """Draw `mix[strategy]` records per strategy (all records when mix is None), then shuffle; both seeded.

    Strategies not named in the mix are left out. A source with fewer
    records than asked is an error naming it, unless allow_short, which takes
    all it has (the result's `short` says which).
    """
    by_strategy: dict[str, list[SFTRecord]] = {}
    for record in sorted(records, key=lambda r: r.id):
        by_strategy.setdefault(record.strategy, []).append(record)
    available = {s: len(rs) for s, rs in sorted(by_strategy.items())}
    requested = dict(mix) if mix is not None else dict(available)
    result = MixResult(records=[], requested=requested, available=available, drawn={})
    if not allow_short and result.short:
        details = "; ".join(f"{s}: asked {asked}, {have} available" for s, (asked, have) in result.short.items())
        raise ExportError(f"--mix asks for more records than the run has ({details}); "
                          "lower the counts, collect more, or pass --allow-short to take what there is")
    for strategy, count in requested.items():
        pool = by_strategy.get(strategy, [])
        rng = random.Random(f"oec-mix:{seed}:{strategy}")
        chosen = rng.sample(pool, min(count, len(pool)))
        result.drawn[strategy] = len(chosen)
        result.records.extend(chosen)
    random.Random(f"oec-mix:{seed}:order").shuffle(result.records)
    return result


# ---------------------------------------------------------------- output formats


def to_messages_row(record: SFTRecord) -> str:
    return record.model_dump_json(exclude_none=False)


def _tool_schemas_openai() -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in TOOLS]


def to_openai_row(record: SFTRecord) -> dict[str, Any]:
    """OpenAI chat fine-tuning line: weight 1 on trained assistant turns, 0 on masked ones."""
    messages: list[dict[str, Any]] = []
    for m in record.messages:
        if m.role == "assistant":
            out: dict[str, Any] = {"role": "assistant"}
            if m.content or not m.tool_calls:
                out["content"] = m.content
            if m.tool_calls:
                out["tool_calls"] = m.tool_calls
            out["weight"] = 1 if m.train else 0
        elif m.role == "tool":
            out = {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
        else:
            out = {"role": m.role, "content": m.content}
        messages.append(out)
    row: dict[str, Any] = {"messages": messages}
    if record.student_format == "native":
        row["tools"] = _tool_schemas_openai()
    return row


def _sharegpt_turn(m: SFTMessage) -> dict[str, str]:
    if m.role == "assistant" and m.tool_calls:
        # LLaMA-Factory's function_call value is the call as JSON; the thought text has no place there
        fn = m.tool_calls[0]["function"]
        return {"from": "function_call", "value": json.dumps({"name": fn["name"], "arguments": json.loads(fn["arguments"])},
                                                             ensure_ascii=False)}
    role = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}[m.role]
    return {"from": role, "value": m.content}


def to_sharegpt_rows(record: SFTRecord) -> list[dict[str, Any]]:
    """One ShareGPT example per trained assistant turn, ending at it (for LLaMA-Factory's mask_history)."""
    system = record.messages[0].content if record.messages and record.messages[0].role == "system" else ""
    body = [m for m in record.messages if m.role != "system"]
    rows = []
    trained = [i for i, m in enumerate(body) if m.role == "assistant" and m.train]
    for n, i in enumerate(trained):
        row: dict[str, Any] = {
            "id": f"{record.id}#{n}",
            "strategy": record.strategy,
            "conversations": [_sharegpt_turn(m) for m in body[: i + 1]],
            "system": system,
        }
        if record.student_format == "native":
            row["tools"] = json.dumps([t.model_dump() for t in TOOLS], ensure_ascii=False)
        rows.append(row)
    return rows


def sharegpt_dataset_info(name: str, file_name: str, native: bool) -> dict[str, Any]:
    """The dataset_info.json entry LLaMA-Factory needs to read a sharegpt export."""
    columns = {"messages": "conversations", "system": "system"}
    if native:
        columns["tools"] = "tools"
    return {name: {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": columns,
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"},
        "_oec_note": "one example per trained assistant turn, cut right after it: train with "
                     "`mask_history: true` so that only that last turn is supervised",
    }}


@dataclass
class WriteResult:
    lines: int
    dataset_info: Path | None = None


def write_export(records: Sequence[SFTRecord], fmt: ExportFormat, out: Path) -> WriteResult:
    """Write `records` to `out` in `fmt` atomically; sharegpt also writes/updates dataset_info.json beside it."""
    if fmt == "messages":
        return WriteResult(write_jsonl_atomic(out, (to_messages_row(r) for r in records)))
    if fmt == "openai":
        return WriteResult(write_jsonl_atomic(out, (to_openai_row(r) for r in records)))
    if fmt != "sharegpt":
        raise ExportError(f"unknown export format {fmt!r} (expected {', '.join(EXPORT_FORMATS)})")
    lines = write_jsonl_atomic(out, (row for r in records for row in to_sharegpt_rows(r)))
    native = any(r.student_format == "native" for r in records)
    info_path = out.parent / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ExportError(f"{info_path}: exists but is not JSON ({exc.msg}); move it away or fix it") from exc
        if not isinstance(info, dict):
            raise ExportError(f"{info_path}: exists but is not a JSON object")
    info.update(sharegpt_dataset_info(out.stem, out.name, native))
    write_text_atomic(info_path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return WriteResult(lines, info_path)


@dataclass
class StrategyCounts:
    records: int = 0
    trained_turns: int = 0
    masked_turns: int = 0
    format_error_turns: int = 0


def count_turns(records: Iterable[SFTRecord]) -> dict[str, StrategyCounts]:
    """Records and assistant turns per strategy, for the export summary."""
    counts: dict[str, StrategyCounts] = {}
    for r in records:
        c = counts.setdefault(r.strategy, StrategyCounts())
        c.records += 1
        c.trained_turns += r.trained_turns
        c.masked_turns += r.masked_turns
        c.format_error_turns += r.format_error_turns
    return dict(sorted(counts.items()))
