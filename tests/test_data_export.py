"""Export: masks from recorded sources, the student's format and prompt, the three output formats, mixtures, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oec.agent.actions import Action
from oec.agent.formats import parse_text, render_text
from oec.agent.history import Step
from oec.agent.prompts import SYSTEM_PROMPTS, task_prompt
from oec.cli import app
from oec.collect.records import Trajectory
from oec.collect.run_dir import RunDir
from oec.data.export import (
    ExportError,
    build_records,
    draw_mixture,
    parse_mix,
    to_openai_row,
    to_sft_record,
    to_sharegpt_rows,
    write_export,
)
from oec.data.records import SFTRecord
from oec.grading.grader import GradeResult
from oec.tasks.bundled import load_bundled_tasks

TASKS = load_bundled_tasks()
TASK = TASKS[0]
FIX = Action(tool="str_replace_editor", arguments={"command": "str_replace", "path": "textkit/slug.py",
                                                   "old_str": "max_length)", "new_str": "max_length + 1)"})


def bash(command: str) -> Action:
    return Action(tool="bash", arguments={"command": command})


def student_step(index: int, action: Action | None, observation: str = "out") -> Step:
    """A text-format student step, written as the student would have written it."""
    if action is None:
        return Step(index=index, source="student", model="s", format="text", raw_text="I will think more.",
                    format_error="no action", observation="")
    return Step(index=index, source="student", model="s", format="text",
                raw_text=render_text(f"Student thought {index}.", action), thought=f"Student thought {index}.",
                action=action, observation=observation)


def expert_step(index: int, action: Action | None, observation: str = "ok") -> Step:
    """A native tool-calling expert step: no text action anywhere in it."""
    if action is None:
        return Step(index=index, source="expert", model="e", format="native", raw_text="hmm",
                    format_error="no tool call", observation="")
    return Step(index=index, source="expert", model="e", format="native", raw_text=f"Expert thought {index}.",
                thought=f"Expert thought {index}.", action=action, observation=observation)


def trajectory(steps: list[Step], strategy: str, *, instance_id: str = TASK.instance_id, sample: int = 0,
               switch_step: int | None = None, resolved: bool = True) -> Trajectory:
    return Trajectory(
        id=f"{instance_id}/{strategy}/{sample}", instance_id=instance_id, strategy=strategy, sample_index=sample,
        run_seed=0, seed=sample, switch_step=switch_step, steps=steps, exit_reason="submitted",
        reward=GradeResult(instance_id=instance_id, resolved=resolved, status="resolved" if resolved else "unresolved"),
    )


def oec_k2(sample: int = 0, instance_id: str = TASK.instance_id) -> Trajectory:
    steps = [student_step(0, bash("ls")), student_step(1, bash("cat textkit/slug.py")),
             expert_step(2, FIX), expert_step(3, bash("python -m pytest -q")), expert_step(4, Action(tool="submit"))]
    return trajectory(steps, "oec", switch_step=2, sample=sample, instance_id=instance_id)


def assistants(record: SFTRecord):
    return [m for m in record.messages if m.role == "assistant"]


def test_oec_trains_expert_turns_only_rendered_as_the_text_student_sees_them() -> None:
    t = oec_k2()
    record = to_sft_record(t, TASK, "text")

    assert record.messages[0].role == "system" and record.messages[0].content == SYSTEM_PROMPTS["text"]
    assert record.messages[1].role == "user" and record.messages[1].content == task_prompt(TASK)
    turns = assistants(record)
    assert [m.source for m in turns] == ["student", "student", "expert", "expert", "expert"]
    assert [m.train for m in turns] == [False, False, True, True, True]
    assert record.trained_turns == 3 and record.masked_turns == 2 and record.switch_step == 2
    # native expert calls became text actions that the student's parser reads back exactly
    for message, step in zip(turns, t.steps):
        assert not message.tool_calls
        thought, action = parse_text(message.content)
        assert action == step.action and thought == step.thought
    # observations are user turns in text format; nothing follows the last trained turn
    assert all(m.role in ("system", "user", "assistant") for m in record.messages)
    assert record.messages[3].content.startswith("OBSERVATION:")
    assert record.messages[-1].role == "assistant" and record.messages[-1].train


def test_native_student_gets_openai_style_tool_calls() -> None:
    record = to_sft_record(oec_k2(), TASK, "native")
    assert record.messages[0].content == SYSTEM_PROMPTS["native"]
    fix = assistants(record)[2]
    (call,) = fix.tool_calls
    assert call["type"] == "function" and call["function"]["name"] == "str_replace_editor"
    assert json.loads(call["function"]["arguments"]) == FIX.arguments
    assert fix.content == "Expert thought 2."
    answer = record.messages[record.messages.index(fix) + 1]
    assert answer.role == "tool" and answer.tool_call_id == call["id"]


@pytest.mark.parametrize("strategy", ["bc", "on-policy"])
def test_bc_and_on_policy_train_every_valid_turn_but_never_a_format_error(strategy: str) -> None:
    make = expert_step if strategy == "bc" else student_step
    steps = [make(0, bash("ls")), make(1, None), make(2, FIX), make(3, Action(tool="submit"))]
    record = to_sft_record(trajectory(steps, strategy), TASK, "text")
    turns = assistants(record)
    assert [m.train for m in turns] == [True, False, True, True]
    assert [m.format_error for m in turns] == [False, True, False, False]
    assert record.format_error_turns == 1
    bad = record.messages.index(turns[1])
    assert record.messages[bad + 1].content.startswith("FORMAT ERROR:")


def test_oec_expert_format_error_is_masked_and_nothing_trainable_is_skipped() -> None:
    steps = [student_step(0, bash("ls")), expert_step(1, None), expert_step(2, Action(tool="submit"))]
    record = to_sft_record(trajectory(steps, "oec", switch_step=1), TASK)
    assert [m.train for m in assistants(record)] == [False, False, True]
    # the student submitted before the switch: no expert turn, nothing to train under OEC masking
    student_only = trajectory([student_step(0, bash("ls")), student_step(1, Action(tool="submit"))], "oec", sample=1)
    built = build_records([oec_k2(), student_only], {TASK.instance_id: TASK})
    assert [r.id for r in built.records] == [oec_k2().id] and built.untrainable == {"oec": 1}


def test_unknown_strategy_and_missing_task_are_clear_errors() -> None:
    with pytest.raises(ExportError, match="unknown strategy 'dagger'"):
        to_sft_record(trajectory([student_step(0, bash("ls"))], "dagger"), TASK)
    with pytest.raises(ExportError, match="nope__x-1"):
        build_records([oec_k2(instance_id="nope__x-1")], {TASK.instance_id: TASK})


@pytest.mark.parametrize("student_format", ["text", "native"])
def test_openai_weights_agree_with_train_flags(student_format: str) -> None:
    for t in (oec_k2(), trajectory([expert_step(0, bash("ls")), expert_step(1, None),
                                    expert_step(2, Action(tool="submit"))], "bc")):
        record = to_sft_record(t, TASK, student_format)
        row = to_openai_row(record)
        got = [m["weight"] for m in row["messages"] if m["role"] == "assistant"]
        assert got == [int(m.train) for m in assistants(record)]
        assert all("weight" not in m for m in row["messages"] if m["role"] != "assistant")
        assert ("tools" in row) == (student_format == "native")


def test_sharegpt_gives_one_example_per_trained_turn_ending_at_it(tmp_path: Path) -> None:
    record = to_sft_record(oec_k2(), TASK, "text")
    rows = to_sharegpt_rows(record)
    assert len(rows) == record.trained_turns == 3
    for row in rows:
        roles = [turn["from"] for turn in row["conversations"]]
        assert roles[0] == "human" and roles[-1] == "gpt"
        assert all(r in ("human", "observation") for r in roles[0::2])
        assert all(r in ("gpt", "function_call") for r in roles[1::2])
        assert row["system"] == SYSTEM_PROMPTS["text"]
    trained = [m.content for m in assistants(record) if m.train]
    assert [row["conversations"][-1]["value"] for row in rows] == trained

    native_rows = to_sharegpt_rows(to_sft_record(oec_k2(), TASK, "native"))
    last = native_rows[0]["conversations"][-1]
    assert last["from"] == "function_call" and json.loads(last["value"])["name"] == "str_replace_editor"
    assert json.loads(native_rows[0]["tools"])[0]["name"] == "bash"

    out = tmp_path / "oec_sft.jsonl"
    (tmp_path / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "x.json"}}))
    assert write_export([record], "sharegpt", out).lines == 3
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert set(info) == {"other", "oec_sft"}
    assert info["oec_sft"]["file_name"] == "oec_sft.jsonl" and info["oec_sft"]["formatting"] == "sharegpt"


def _records(counts: dict[str, int]) -> list[SFTRecord]:
    out = []
    for strategy, n in counts.items():
        for i in range(n):
            steps = [expert_step(0, Action(tool="submit"))]
            out.append(to_sft_record(trajectory(steps, strategy, sample=i), TASK))
    return out


def test_mixture_draws_requested_counts_reproducibly() -> None:
    records = _records({"oec": 10, "bc": 6, "on-policy": 4})
    mix = parse_mix("oec=5,bc=2,on-policy=0")
    first = draw_mixture(records, mix, seed=7)
    counts = {s: sum(r.strategy == s for r in first.records) for s in ("oec", "bc", "on-policy")}
    assert counts == {"oec": 5, "bc": 2, "on-policy": 0} and first.drawn == {"oec": 5, "bc": 2, "on-policy": 0}
    assert len({r.id for r in first.records}) == 7  # without replacement
    again = draw_mixture(list(reversed(records)), mix, seed=7)  # file order does not matter
    assert [r.id for r in again.records] == [r.id for r in first.records]
    others = {tuple(r.id for r in draw_mixture(records, mix, seed=s).records) for s in range(8, 14)}
    assert len(others) > 1
    # no mix: every record, seeded order
    assert len(draw_mixture(records, None, seed=0).records) == 20


def test_a_short_source_is_an_error_naming_it_unless_allowed() -> None:
    records = _records({"oec": 3, "bc": 5})
    with pytest.raises(ExportError, match=r"oec: asked 4, 3 available") as info:
        draw_mixture(records, parse_mix("oec=4,bc=1"), seed=0)
    assert "bc" not in str(info.value).split("(")[1].split(")")[0]
    with pytest.raises(ExportError, match=r"on-policy: asked 1, 0 available"):
        draw_mixture(records, {"on-policy": 1}, seed=0)
    allowed = draw_mixture(records, parse_mix("oec=4,bc=1"), seed=0, allow_short=True)
    assert allowed.drawn == {"oec": 3, "bc": 1} and allowed.short == {"oec": (4, 3)}


@pytest.mark.parametrize("spec,message", [("oce=3", "unknown source 'oce'"), ("oec=x", "not a whole number"),
                                          ("oec=-1", "negative"), ("oec=1,oec=2", "twice"), ("oec", "SOURCE=COUNT")])
def test_bad_mix_specs(spec: str, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        parse_mix(spec)


def test_cli_filter_then_export_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.open()
    other = TASKS[1].instance_id
    loop = [student_step(i, bash("ls"), "same") for i in range(3)] + [expert_step(3, Action(tool="submit"))]
    rows = [
        oec_k2(sample=0),
        oec_k2(sample=1, instance_id=other),
        trajectory([expert_step(0, FIX), expert_step(1, Action(tool="submit"))], "bc", sample=0),
        trajectory([student_step(0, FIX), student_step(1, Action(tool="submit"))], "on-policy", resolved=False),
        trajectory(loop, "oec", sample=2, switch_step=3),
    ]
    for t in rows:
        run.append(t)
    runner = CliRunner()

    early = runner.invoke(app, ["export", str(run.path), "--format", "messages", "--out", str(tmp_path / "x.jsonl")])
    assert early.exit_code != 0 and "oec filter" in early.output

    result = runner.invoke(app, ["filter", str(run.path), "--exit-reasons", "submitted"])
    assert result.exit_code == 0, result.output
    kept = [Trajectory.model_validate_json(line) for line in (run.path / "filtered.jsonl").read_text().splitlines()]
    assert sorted(t.id for t in kept) == sorted(t.id for t in rows[:3])
    report = json.loads((run.path / "filter_report.json").read_text())
    assert report["dropped"] == {"failed_to_run": 0, "resolved": 1, "reward_hack": 0, "repetition": 1, "exit_reason": 0}
    assert report["kept_per_strategy"] == {"bc": 1, "oec": 2, "on-policy": 0}

    out = tmp_path / "sft" / "openai.jsonl"
    result = runner.invoke(app, ["export", str(run.path), "--format", "openai", "--out", str(out),
                                 "--mix", "oec=2,bc=1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3
    weights = sorted(tuple(m["weight"] for m in line["messages"] if m["role"] == "assistant") for line in lines)
    assert weights == [(0, 0, 1, 1, 1), (0, 0, 1, 1, 1), (1, 1)]
    assert "student format text" in result.output

    short = runner.invoke(app, ["export", str(run.path), "--format", "messages", "--out", str(tmp_path / "m.jsonl"),
                                "--mix", "oec=5"])
    assert short.exit_code != 0 and "oec: asked 5, 2 available" in short.output

    records_out = tmp_path / "messages.jsonl"
    result = runner.invoke(app, ["export", str(run.path), "--format", "messages", "--unfiltered",
                                 "--out", str(records_out)])
    assert result.exit_code == 0, result.output
    records = [SFTRecord.model_validate_json(line) for line in records_out.read_text().splitlines()]
    assert len(records) == 5  # unfiltered: the unresolved and the looping rollouts too

    foreign = tmp_path / "tasks.jsonl"
    foreign.write_text(TASKS[2].model_dump_json() + "\n")
    result = runner.invoke(app, ["export", str(run.path), "--format", "messages", "--out", str(records_out),
                                 "--tasks", str(foreign)])
    assert result.exit_code != 0 and TASK.instance_id in result.output
