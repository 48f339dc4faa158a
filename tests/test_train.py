"""Training: per-turn loss masks against the real chat template, dropping rules, and real (tiny) training runs.

Masks are checked against SmolLM2's own tokenizer and template, since an
off-by-one there would silently train the student's turns or the headers.
Training runs use a tiny random Llama (2 layers, hidden 64) with SmolLM2's
vocabulary, so they take seconds on CPU; one slow test fine-tunes the real
SmolLM2 for a step and runs the result in a rollout.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

import torch
from typer.testing import CliRunner

from oec.data.records import SFTMessage, SFTRecord
from oec.models import smollm2
from oec.train.masking import (
    IGNORE_INDEX,
    SFTDataError,
    TemplateError,
    TokenBoundaryError,
    encode_record,
    encode_records,
    load_sft_file,
    supervised_spans,
    to_chat_messages,
)
from oec.train.trainer import SUMMARY_FILE, TrainError, train

EXPERT_1 = "The test imports `add`; let me read it.\n```bash\ncat calc/__init__.py\n```"
EXPERT_2 = "Fix the operator.\n```bash\nsed -i 's/a - b/a + b/' calc/__init__.py\n```"
STUDENT = "I will look around.\n```bash\nls\n```"


def oec_record(rid: str = "r0", expert_1: str = EXPERT_1, expert_2: str = EXPERT_2) -> SFTRecord:
    """An OEC-shaped record: the student acts once, the expert takes over from its state for two turns."""
    return SFTRecord(id=rid, instance_id="acme__calc-1", strategy="oec", switch_step=1, messages=[
        SFTMessage(role="system", content="You are a software engineer. Act with one bash block per turn."),
        SFTMessage(role="user", content="add(2, 3) returns -1. Fix it."),
        SFTMessage(role="assistant", content=STUDENT, train=False, source="student"),
        SFTMessage(role="user", content="OBSERVATION:\ncalc\ntests"),
        SFTMessage(role="assistant", content=expert_1, train=True, source="expert"),
        SFTMessage(role="user", content="OBSERVATION:\ndef add(a, b):\n    return a - b"),
        SFTMessage(role="assistant", content=expert_2, train=True, source="expert"),
    ])


def write_records(path: Path, records: list[SFTRecord]) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2.smollm2_checkpoint()), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer) -> Path:
    """A 2-layer random Llama with SmolLM2's vocabulary and chat template, saved like any checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- masks against the real template -----------------------------------------------------------


def test_only_expert_turns_and_their_end_token_are_supervised(tokenizer) -> None:
    record = oec_record()
    example = encode_record(record, tokenizer, max_length=4096)
    assert example is not None

    # the ids are exactly what the chat template gives for the whole conversation (prefix consistency)
    chat = to_chat_messages(record)
    assert [m["content"] for m in chat] == [m.content for m in record.messages]
    templated = tokenizer.apply_chat_template(chat, tokenize=True)
    templated = templated["input_ids"] if not isinstance(templated, list) else templated
    assert example.input_ids == list(templated)

    # supervised: each expert turn's content plus <|im_end|>; not its header, not the "\n" after it
    spans = supervised_spans(example.labels)
    assert [tokenizer.decode(example.input_ids[a:b]) for a, b in spans] == [
        EXPERT_1 + "<|im_end|>", EXPERT_2 + "<|im_end|>"]
    for a, b in spans:
        assert example.labels[a:b] == example.input_ids[a:b]
        assert tokenizer.decode(example.input_ids[:a]).endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert tokenizer.decode(example.input_ids[b:b + 1]) == "\n" and example.labels[b] == IGNORE_INDEX
    everything_else = [i for i in range(len(example)) if not any(a <= i < b for a, b in spans)]
    assert all(example.labels[i] == IGNORE_INDEX for i in everything_else)
    masked_text = tokenizer.decode([example.input_ids[i] for i in everything_else])
    for message in record.messages:
        if not message.train:  # system, users, the student's turn: present, never supervised
            assert message.content in masked_text
    assert example.n_supervised == sum(b - a for a, b in spans)


def test_a_template_without_a_separator_after_the_end_token(tokenizer) -> None:
    """Nothing ChatML-specific: any prefix-consistent template works; here turns end on <|endoftext|>."""
    import copy

    other = copy.deepcopy(tokenizer)
    other.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>"
                           "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    example = encode_record(oec_record(), other, max_length=4096)
    assert example is not None
    assert [other.decode(example.input_ids[a:b]) for a, b in supervised_spans(example.labels)] == [
        EXPERT_1 + "<|endoftext|>", EXPERT_2 + "<|endoftext|>"]


def test_a_template_that_rewrites_earlier_turns_is_refused_by_name(tokenizer) -> None:
    import copy

    other = copy.deepcopy(tokenizer)
    other.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}{% if loop.last %} (latest){% endif %}"
                           "\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(TemplateError, match="chat template of .*smollm2.* is not prefix-consistent"):
        encode_record(oec_record(), other, max_length=4096)
    with pytest.raises(TemplateError):  # the whole dataset would be wrong: an error, not a count
        encode_records([oec_record()], other, max_length=4096)


def test_tokens_merged_across_a_turn_boundary_drop_the_record(tokenizer) -> None:
    """ChatML: a turn starting with blank lines merges with the header's newline; no span of its own."""
    record = oec_record(expert_1="\n\n" + EXPERT_1)
    with pytest.raises(TokenBoundaryError, match="merge across the turn boundary"):
        encode_record(record, tokenizer, max_length=4096)
    encoded = encode_records([record, oec_record("ok")], tokenizer, max_length=4096)
    assert encoded.dropped_token_boundary == 1 and [e.record_id for e in encoded.examples] == ["ok"]


def test_too_long_records_are_dropped_whole_and_counted_under_the_drop_policy(tokenizer) -> None:
    short, long = oec_record("short"), oec_record("long", expert_2=EXPERT_2 + "\n" + "x = 1\n" * 200)
    n_short = len(encode_record(short, tokenizer, max_length=100_000))
    n_long = len(encode_record(long, tokenizer, max_length=100_000))
    assert n_short < n_long

    assert encode_record(long, tokenizer, max_length=n_long - 1) is None
    assert len(encode_record(long, tokenizer, max_length=n_long)) == n_long  # exactly max_length fits

    encoded = encode_records([short, long, short.model_copy(update={"id": "short2"})], tokenizer,
                             max_length=n_long - 1, long_records="drop")
    assert encoded.records == 3 and encoded.dropped_too_long == 1
    assert [e.record_id for e in encoded.examples] == ["short", "short2"]
    assert all(len(e) == n_short for e in encoded.examples)  # kept whole
    # the long record's trained turn is the last thing in it: a cut would have kept a masked-only prefix
    assert encoded.supervised_tokens == 2 * encode_record(short, tokenizer, 100_000).n_supervised


def test_too_long_records_are_windowed_by_default_and_a_turn_too_long_alone_is_counted(tokenizer) -> None:
    long = oec_record("long", expert_2=EXPERT_2 + "\n" + "x = 1\n" * 200)
    whole = encode_record(long, tokenizer, max_length=100_000)
    encoded = encode_records([long], tokenizer, max_length=len(whole) - 1)
    # two windows, each the task plus whole turns, each expert turn trained exactly once, with its own tokens
    assert [e.record_id for e in encoded.examples] == ["long#w0", "long#w1"]
    assert encoded.windowed_records == 1 and encoded.dropped_too_long == 0 and encoded.dropped_turns_too_long == 0
    assert all(len(e) < len(whole) for e in encoded.examples)
    assert encoded.supervised_tokens == whole.n_supervised
    head = len(encode_record(oec_record(), tokenizer, 100_000).input_ids) - 60  # room for the task and a turn
    encoded = encode_records([long], tokenizer, max_length=head)
    # the second expert turn is longer than the limit with no context at all: counted, the first still trains
    assert encoded.dropped_turns_too_long == 1 and [e.record_id for e in encoded.examples] == ["long#w0"]


def test_records_with_nothing_to_train_are_dropped_and_counted(tokenizer) -> None:
    untrained = oec_record("student-only")
    for m in untrained.messages:
        if m.role == "assistant":
            m.train = False
    encoded = encode_records([untrained, oec_record()], tokenizer, max_length=4096)
    assert encoded.dropped_nothing_to_train == 1 and len(encoded.examples) == 1


# -- reading training files --------------------------------------------------------------------


def test_load_sft_file_names_file_line_and_field(tmp_path: Path) -> None:
    good = oec_record().model_dump_json()
    path = tmp_path / "data.jsonl"
    path.write_text(good + "\n\n" + good + "\n")
    assert [r.id for r in load_sft_file(path)] == ["r0", "r0"]

    path.write_text(good + "\n{not json\n")
    with pytest.raises(SFTDataError, match=rf"^{path}:2:"):
        load_sft_file(path)
    row = json.loads(good)
    del row["messages"][3]["role"]
    path.write_text(good + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SFTDataError, match=rf"^{path}:2:messages\.3\.role: Field required"):
        load_sft_file(path)
    row = json.loads(good)
    row["messages"][1]["train"] = True
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(SFTDataError, match=rf"^{path}:1:messages\.1\.train: only assistant turns"):
        load_sft_file(path)
    path.write_text("")
    with pytest.raises(SFTDataError, match="no records"):
        load_sft_file(path)
    with pytest.raises(SFTDataError, match="no such file"):
        load_sft_file(tmp_path / "missing.jsonl")


def test_bad_arguments_fail_before_loading_anything(tmp_path: Path) -> None:
    data = write_records(tmp_path / "d.jsonl", [oec_record()])
    with pytest.raises(TrainError, match="only local transformers models"):
        train(data, "openai:gpt-4o", tmp_path / "out")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(TrainError, match="not empty.*--overwrite"):
        train(data, "hf:smollm2-135m", busy)
    assert (busy / "keep.txt").read_text() == "x"


# -- training ----------------------------------------------------------------------------------


def masked_loss(checkpoint: Path, input_ids: list[int], labels: list[int]) -> float:
    """Mean loss over the supervised tokens only (labels -100 elsewhere), as the trainer should compute it."""
    from oec.models.hf import load_hf_causal_lm

    model, _ = load_hf_causal_lm(str(checkpoint), dtype=torch.float32)
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels])).loss)


@pytest.mark.parametrize("lora", [True, False], ids=["lora-merged", "full"])
def test_training_lowers_the_loss_on_the_trained_tokens(tmp_path: Path, tiny_model: Path, tokenizer,
                                                        lora: bool) -> None:
    record = oec_record()
    data = write_records(tmp_path / "d.jsonl", [record])
    example = encode_record(record, tokenizer, 4096)
    before = masked_loss(tiny_model, example.input_ids, example.labels)
    unmasked_before = masked_loss(tiny_model, example.input_ids, example.input_ids)

    out = tmp_path / "ckpt"
    summary = train(data, f"hf:{tiny_model}", out, lora=lora, lr=1e-2 if lora else 3e-3, max_steps=4,
                    grad_accum=1, max_length=4096, seed=0)
    after = masked_loss(out, example.input_ids, example.labels)
    assert after < before - 0.05, (before, after)

    # TRL trained on OUR labels: its first logged loss (before any update) is the masked loss, not the full one
    # (a random model's per-token losses are all near ln(vocab), hence the tight tolerance)
    first = summary.loss_curve[0]["loss"]
    assert first == pytest.approx(before, abs=1e-4) and abs(first - unmasked_before) > 5e-4

    assert not (out / "adapter_config.json").exists()  # merged: loads without peft
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert written["records_used"] == 1 and written["supervised_tokens"] == example.n_supervised
    assert written["dropped_too_long"] == 0 and written["dropped_nothing_to_train"] == 0
    assert written["hyperparameters"]["lora"] is lora and written["steps"] == 4
    assert [p["step"] for p in written["loss_curve"]] == [1, 2, 3, 4]
    assert written["data"] == str(data) and written["duration_s"] > 0
    assert not list(tmp_path.glob(".ckpt.*"))  # the temp folder was renamed into place


def test_same_seed_same_run_with_padded_batches(tmp_path: Path, tiny_model: Path) -> None:
    records = [oec_record("a"), oec_record("b", expert_2="```bash\nls -la\n```"), oec_record("c", expert_1="ok")]
    data = write_records(tmp_path / "d.jsonl", records)  # three lengths: batches of 2 need padding
    runs = [train(data, f"hf:{tiny_model}", tmp_path / f"o{i}", lr=1e-2, max_steps=2, batch_size=2,
                  grad_accum=1, seed=7) for i in range(2)]
    assert [p["loss"] for p in runs[0].loss_curve] == [p["loss"] for p in runs[1].loss_curve]
    assert runs[0].supervised_tokens == sum(
        e.n_supervised for e in encode_records(records, runs_tokenizer(tiny_model), 4096).examples)


def runs_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_native_records_keep_tool_calls_structured_and_text_records_render_like_the_live_history() -> None:
    """Native records reach the template as tool calls and tool turns; text records as the text history."""
    messages = [
        SFTMessage(role="system", content="S"), SFTMessage(role="user", content="U"),
        SFTMessage(role="assistant", content="look", train=True, source="expert", tool_calls=[
            {"id": "call_0", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]),
        SFTMessage(role="tool", content="a.py", tool_call_id="call_0"),
    ]
    native = to_chat_messages(SFTRecord(id="n", instance_id="i", strategy="bc", student_format="native",
                                        messages=messages))
    assert [m["role"] for m in native] == ["system", "user", "assistant", "tool"]
    assert native[2]["tool_calls"][0]["function"] == {"name": "bash", "arguments": {"command": "ls"}}
    assert native[3] == {"role": "tool", "content": "a.py", "tool_call_id": "call_0", "name": "bash"}

    text = to_chat_messages(SFTRecord(id="t", instance_id="i", strategy="bc", student_format="text",
                                      messages=messages))
    assert [m["role"] for m in text] == ["system", "user", "assistant", "user"]
    assert json.loads(text[2]["content"].split("\n")[1]) == {"name": "bash", "arguments": {"command": "ls"}}
    assert text[3]["content"] == "Output of bash:\na.py"


def test_cli_trains_and_reports_bad_data_with_its_line(tmp_path: Path, tiny_model: Path) -> None:
    from oec.cli import app

    runner = CliRunner()
    data = write_records(tmp_path / "d.jsonl", [oec_record(), oec_record("long", expert_2="y\n" * 3000)])
    out = tmp_path / "ckpt"
    result = runner.invoke(app, ["train", "--data", str(data), "--model", f"hf:{tiny_model}", "--no-lora",
                                 "--max-steps", "1", "--grad-accum", "1", "--max-length", "512", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "longer than max length" in result.output and (out / "model.safetensors").is_file()
    written = json.loads((out / SUMMARY_FILE).read_text())
    # the long record's first expert turn still trains; its second, longer than 512 tokens alone, is counted
    assert written["dropped_too_long"] == 0 and written["dropped_turns_too_long"] == 1
    assert written["records_used"] == 2 and written["examples"] == 2 and written["student_format"] == "text"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(oec_record().model_dump_json() + "\n" + '{"id": "x"}\n')
    result = runner.invoke(app, ["train", "--data", str(bad), "--model", f"hf:{tiny_model}",
                                 "--out", str(tmp_path / "never")])
    assert result.exit_code == 2
    assert f"{bad}:2:" in " ".join(result.output.split()) and not (tmp_path / "never").exists()


@pytest.mark.slow
def test_a_trained_smollm2_checkpoint_acts_in_a_rollout(tmp_path: Path) -> None:
    """LoRA on the real student for one step, merged; `hf:OUT` then plays the student in a graded rollout."""
    from oec.collect.episode import EpisodeLimits
    from oec.collect.rollout import RolloutConfig, run_rollout
    from oec.env.repos import RepoIndex
    from oec.models.hf import HFModel
    from oec.models.registry import ModelOptions, make_provider
    from oec.tasks.bundled import bundled_repos_dir, load_bundled_tasks

    data = write_records(tmp_path / "d.jsonl", [oec_record()])
    out = tmp_path / "student"
    summary = train(data, "hf:smollm2-135m", out, lora=True, max_steps=1, grad_accum=1, max_length=2048)
    assert summary.steps == 1 and not (out / "adapter_config.json").exists()

    provider = make_provider(f"hf:{out}", ModelOptions(max_tokens=16))
    student = provider.for_task(None)
    assert isinstance(student, HFModel)
    task = load_bundled_tasks()[0]
    config = RolloutConfig(strategy="on-policy", student=provider, expert=None, switch=None,
                           repos=RepoIndex([bundled_repos_dir()]), limits=EpisodeLimits(max_calls_per_model=2))
    trajectory = asyncio.run(run_rollout(task, 0, config))

    assert [s.source for s in trajectory.steps] == ["student", "student"]
    assert all(s.model == f"hf:{out}" and s.raw_text.strip() and 0 < s.usage.completion_tokens <= 16
               for s in trajectory.steps)
    assert trajectory.exit_reason == "call_limit"
    assert trajectory.reward is not None and trajectory.resolved is False  # graded (16 tokens fix nothing)


def long_oec_record(rid: str = "long70", turns: int = 70, observation_lines: int = 40) -> SFTRecord:
    """A 70-turn OEC trajectory (35 student turns, then 35 expert turns), each observation ~40 lines."""
    messages = [SFTMessage(role="system", content="You are a software engineer. Act with one bash block per turn."),
                SFTMessage(role="user", content="add(2, 3) returns -1. Fix it.")]
    for i in range(turns):
        expert = i >= turns // 2
        messages.append(SFTMessage(role="assistant", content=f"Step {i}.\n```bash\ncat file_{i}.py\n```",
                                   train=expert, source="expert" if expert else "student"))
        if i < turns - 1:
            body = "\n".join(f"line {j} of file_{i}: value = {i * j}" for j in range(observation_lines))
            messages.append(SFTMessage(role="user", content=f"OBSERVATION:\n{body}"))
    return SFTRecord(id=rid, instance_id="acme__calc-1", strategy="oec", switch_step=turns // 2, messages=messages)


def test_a_70_turn_trajectory_is_trained_in_windows_not_dropped(tmp_path: Path, tiny_model: Path, tokenizer) -> None:
    record = long_oec_record()
    whole = encode_record(record, tokenizer, max_length=10**6)
    assert len(whole) > 4096  # longer than the tiny model's context, the default limit
    data = write_records(tmp_path / "long.jsonl", [record])
    summary = train(data, f"hf:{tiny_model}", tmp_path / "out", lora=False, max_steps=1, grad_accum=1)
    assert summary.max_length == 4096 and summary.records_used == 1 and summary.windowed_records == 1
    assert summary.dropped_too_long == 0 and summary.dropped_turns_too_long == 0
    assert summary.examples > 1 and summary.longest_tokens <= 4096
    # every expert turn is supervised exactly once across the windows, with exactly its own tokens
    assert summary.supervised_tokens == whole.n_supervised
    encoded = encode_records([record], tokenizer, max_length=4096)
    assert sum(len(supervised_spans(e.labels)) for e in encoded.examples) == 35
    for example in encoded.examples:  # each window starts with the system prompt and the task statement
        text = tokenizer.decode(example.input_ids)
        assert text.startswith("<|im_start|>system\nYou are a software engineer") and "add(2, 3) returns -1" in text
