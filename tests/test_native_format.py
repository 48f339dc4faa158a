"""One student format end to end: native tool calls rendered with the chat template's `tools=`.

Two tokenizers are built here, never downloaded: SmolLM2's vocabulary with the
special tokens and a chat template in the layout of Qwen2.5 (Hermes
``<tool_call>`` blocks, tool results as ``<tool_response>`` in a user turn)
and of Llama 3 (tools in the system turn, calls as bare JSON with
"parameters", results in an ``ipython`` turn). The templates are written for
these tests in those families' layouts. The masks must be token-exact: the
supervised tokens are exactly the trained turns' calls and end-of-turn token.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from oec.agent.actions import Action
from oec.agent.history import Step
from oec.data.export import to_sft_record
from oec.data.records import SFTMessage, SFTRecord
from oec.models import smollm2
from oec.models.base import Message, ToolCall
from oec.models.chat_format import ChatFormatError, parse_tool_calls, tool_call_style
from oec.models.hf import HFModel, choose_format
from oec.models.registry import ModelOptions
from oec.train.masking import IGNORE_INDEX, TemplateError, encode_record, encode_records, supervised_spans
from oec.tasks.model import Task

QWEN_STYLE = (
    "{%- if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}{% endif %}\n\n# Tools\n<tools>\n"
    "{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n"
    "Call a function with <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>.<|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' %}<|im_start|>user\n{{ m.content }}<|im_end|>\n"
    "{%- elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}{% if m.content or not loop.first %}{{ '\\n' }}{% endif %}<tool_call>\n"
    "{\"name\": \"{{ c.function.name }}\", \"arguments\": {{ c.function.arguments | tojson }}}\n</tool_call>"
    "{%- endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}{% if loop.previtem.role != 'tool' %}<|im_start|>user{% endif %}{{ '\\n' }}"
    "<tool_response>\n{{ m.content }}\n</tool_response>"
    "{% if loop.last or loop.nextitem.role != 'tool' %}<|im_end|>\n{% endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_STYLE = (
    "{{- bos_token }}<|start_header_id|>system<|end_header_id|>\n\n"
    "{%- if tools %}Environment: ipython\nTo call a function, reply with JSON "
    "{\"name\": function name, \"parameters\": arguments}.\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}"
    "{% endif %}{% if messages[0].role == 'system' %}{{ messages[0].content }}{% endif %}<|eot_id|>"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' %}<|start_header_id|>user<|end_header_id|>\n\n{{ m.content }}<|eot_id|>"
    "{%- elif m.role == 'assistant' %}<|start_header_id|>assistant<|end_header_id|>\n\n{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}{\"name\": \"{{ c.function.name }}\", "
    "\"parameters\": {{ c.function.arguments | tojson }}}{% endfor %}<|eot_id|>"
    "{%- elif m.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>\n\n{{ m.content }}<|eot_id|>"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
SPECIALS = {
    "qwen": ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"],
    "llama3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>"],
}


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2.smollm2_checkpoint()), local_files_only=True)


def build_tokenizer(base, family: str):
    tokenizer = copy.deepcopy(base)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[family]})
    tokenizer.chat_template = QWEN_STYLE if family == "qwen" else LLAMA3_STYLE
    if family == "llama3":
        tokenizer.bos_token = "<|begin_of_text|>"
        tokenizer.eos_token = "<|eot_id|>"
    return tokenizer


def call(call_id: str, name: str, arguments: dict) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def native_record() -> SFTRecord:
    """OEC-shaped: a student call kept as context, then two trained expert calls."""
    return SFTRecord(id="n0", instance_id="acme__calc-1", strategy="oec", student_format="native", messages=[
        SFTMessage(role="system", content="Fix the bug. Call exactly one tool per reply."),
        SFTMessage(role="user", content="add(2, 3) returns -1."),
        SFTMessage(role="assistant", content="", train=False, source="student",
                   tool_calls=[call("call_0", "bash", {"command": "ls"})]),
        SFTMessage(role="tool", content="calc\ntests", tool_call_id="call_0"),
        SFTMessage(role="assistant", content="Read the module.", train=True, source="expert",
                   tool_calls=[call("call_1", "str_replace_editor", {"command": "view", "path": "calc/__init__.py"})]),
        SFTMessage(role="tool", content="def add(a, b):\n    return a - b", tool_call_id="call_1"),
        SFTMessage(role="assistant", content="", train=True, source="expert",
                   tool_calls=[call("call_2", "submit", {})]),
    ])


def expected_turns(family: str) -> list[str]:
    """What the two trained turns are, written out by hand in each family's call syntax."""
    view = '{"command": "view", "path": "calc/__init__.py"}'
    if family == "qwen":
        return [f'Read the module.\n<tool_call>\n{{"name": "str_replace_editor", "arguments": {view}}}\n</tool_call>'
                "<|im_end|>", '<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call><|im_end|>']
    return [f'Read the module.{{"name": "str_replace_editor", "parameters": {view}}}<|eot_id|>',
            '{"name": "submit", "parameters": {}}<|eot_id|>']


@pytest.mark.parametrize("family", ["qwen", "llama3"])
def test_native_masks_are_token_exact_with_tools_rendered(smol_tokenizer, family) -> None:
    tokenizer = build_tokenizer(smol_tokenizer, family)
    record = native_record()
    example = encode_record(record, tokenizer, max_length=100_000)
    assert example is not None
    from oec.models.chat_format import tool_schemas
    from oec.train.masking import to_chat_messages

    whole = tokenizer.apply_chat_template(to_chat_messages(record), tokenize=False, tools=tool_schemas())
    assert example.input_ids == tokenizer(whole, add_special_tokens=False)["input_ids"]  # what inference sees
    assert '"name": "bash"' in whole and "Environment: ipython" in whole if family == "llama3" else "<tools>" in whole
    spans = supervised_spans(example.labels)
    assert [tokenizer.decode(example.input_ids[a:b]) for a, b in spans] == expected_turns(family)
    for a, b in spans:
        assert example.labels[a:b] == example.input_ids[a:b]
    # the student's call, the tool results and the headers are context only
    assert sum(label != IGNORE_INDEX for label in example.labels) == sum(b - a for a, b in spans)


def test_a_native_record_needs_a_template_that_renders_tools(smol_tokenizer) -> None:
    with pytest.raises(TemplateError, match="does not render tools.*--student-format text"):
        encode_records([native_record()], smol_tokenizer, max_length=100_000)


def test_export_renders_a_native_student_and_its_tool_results_for_the_template(smol_tokenizer) -> None:
    """A trajectory exported for a native student encodes with tools=, trained turns exactly the expert's."""
    task = Task(instance_id="acme__calc-1", repo="acme/calc", base_commit="a" * 40, problem_statement="add is wrong",
                patch="diff --git a/x b/x\n")
    from oec.collect.records import Trajectory

    steps = [Step(index=0, source="student", model="s", format="native", action=Action(tool="bash", arguments={
        "command": "ls"}), observation="calc"),
             Step(index=1, source="expert", model="e", format="native", thought="Done.", action=Action(tool="submit"),
                  observation="Submitted.")]
    trajectory = Trajectory(id="t", instance_id=task.instance_id, strategy="oec", sample_index=0, run_seed=0, seed=0,
                            exit_reason="submitted", steps=steps, switch_step=1)
    record = to_sft_record(trajectory, task, "native")
    tokenizer = build_tokenizer(smol_tokenizer, "qwen")
    example = encode_record(record, tokenizer, max_length=100_000)
    assert [tokenizer.decode(example.input_ids[a:b]) for a, b in supervised_spans(example.labels)] == [
        'Done.\n<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call><|im_end|>']


@pytest.mark.parametrize("family,reply,expected", [
    ("hermes", 'Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
     ("Let me look.", [("bash", {"command": "ls"})])),
    ("llama3_json", '<|python_tag|>{"name": "submit", "parameters": {}}', ("", [("submit", {})])),
    ("llama3_json", 'Thinking. {"name": "bash", "parameters": {"command": "pwd"}}',
     ("Thinking.", [("bash", {"command": "pwd"})])),
    ("hermes", "no call at all", ("no call at all", [])),
])
def test_replies_are_read_back_into_tool_calls(family, reply, expected) -> None:
    thought, calls = parse_tool_calls(reply, family)
    assert (thought, [(c.name, c.arguments) for c in calls]) == expected


def test_a_broken_call_keeps_its_error_for_the_model_to_see() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "bash", "arguments": {"command": </tool_call>', "hermes")
    assert calls[0].name == "bash" and "not JSON" in calls[0].parse_error


def test_the_call_syntax_comes_from_the_template() -> None:
    assert tool_call_style(QWEN_STYLE) == "hermes" and tool_call_style(LLAMA3_STYLE) == "llama3_json"
    with pytest.raises(ChatFormatError, match="does not render tools"):
        tool_call_style("{% for m in messages %}{{ m.content }}{% endfor %}")


def save_checkpoint_files(folder: Path, tokenizer, recorded: str | None = None) -> Path:
    """A checkpoint folder's tokenizer files (all `choose_format` reads), and what `oec train` recorded."""
    tokenizer.save_pretrained(folder)
    if recorded:
        (folder / "oec_train.json").write_text(json.dumps({"student_format": recorded}))
    return folder


def test_the_format_follows_the_checkpoint_and_a_contradiction_is_an_error(tmp_path, smol_tokenizer) -> None:
    native = save_checkpoint_files(tmp_path / "native", build_tokenizer(smol_tokenizer, "qwen"), "native")
    assert choose_format(str(native), None) is True  # what it was trained in
    with pytest.raises(ValueError, match="trained in the native format.*text would evaluate it in another"):
        choose_format(str(native), False)
    plain = save_checkpoint_files(tmp_path / "plain", smol_tokenizer)
    assert choose_format(str(plain), None) is False
    with pytest.raises(ValueError, match="native format needs its chat template.*does not render tools"):
        choose_format(str(plain), True)


def test_a_native_hf_model_is_prompted_with_tools_and_its_calls_are_parsed(tmp_path, smol_tokenizer) -> None:
    tokenizer = build_tokenizer(smol_tokenizer, "qwen")
    folder = save_checkpoint_files(tmp_path / "ckpt", tokenizer, "native")
    model = HFModel(str(folder), ModelOptions())
    assert model.native_tools
    model._tokenizer = tokenizer  # the prompt and the parsing need only the tokenizer
    messages = [Message(role="system", content="S"), Message(role="user", content="U"),
                Message(role="assistant", content="", tool_calls=[ToolCall(id="c0", name="bash",
                                                                           arguments={"command": "ls"})]),
                Message(role="tool", content="a.py", tool_call_id="c0", name="bash")]
    model._model = object()  # loaded enough for prompt_ids
    text = tokenizer.decode(model.prompt_ids(messages))
    assert "<tools>" in text and '"name": "str_replace_editor"' in text and "<tool_response>\na.py" in text
    reply = tokenizer('Go.\n<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call><|im_end|>',
                      add_special_tokens=False)["input_ids"]
    completion = model._completion([1, 2], reply, "stop", 0.0)
    assert completion.text == "Go." and [(c.name, c.arguments) for c in completion.tool_calls] == [("submit", {})]
