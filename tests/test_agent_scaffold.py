"""The scaffold: strict parsing of both action formats, canonical history rendered per model, the editor."""

from __future__ import annotations

import pytest

from oec.agent.actions import Action, FormatError
from oec.agent.formats import parse_native, parse_text, render_text
from oec.agent.history import Step, render
from oec.agent.tools import execute, truncate
from oec.env.repos import RepoIndex
from oec.env.session import EnvSession
from oec.models.base import Completion, ToolCall


def test_text_format_bash_block() -> None:
    thought, action = parse_text("Let me look.\n```bash\nls -la\n```")
    assert thought == "Let me look." and action == Action(tool="bash", arguments={"command": "ls -la"})


def test_text_format_xml_function_with_typed_parameters() -> None:
    reply = ("Fix it.\n<function=str_replace_editor>\n<parameter=command>insert</parameter>\n"
             "<parameter=path>a.py</parameter>\n<parameter=insert_line>3</parameter>\n"
             "<parameter=new_str>\nx = 1\n</parameter>\n</function>")
    thought, action = parse_text(reply)
    assert thought == "Fix it."
    assert action.arguments == {"command": "insert", "path": "a.py", "insert_line": 3, "new_str": "x = 1"}


@pytest.mark.parametrize("reply, needle", [
    ("I think the bug is in add().", "no action"),
    ("```bash\nls\n```\n```bash\npwd\n```", "2 actions"),
    ("<function=rm_rf>\n</function>", "Unknown tool"),
    ("<function=str_replace_editor>\n<parameter=path>a.py</parameter>\n</function>", "missing required"),
    ("<function=bash>\n<parameter=cmd>ls</parameter>\n</function>", "unknown parameter"),
])
def test_text_format_is_strict(reply: str, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_text(reply)


def test_native_format_needs_exactly_one_well_formed_call() -> None:
    call = ToolCall(id="c1", name="bash", arguments={"command": "pwd"})
    assert parse_native(Completion(text="t", tool_calls=[call]))[1].tool == "bash"
    with pytest.raises(FormatError, match="no tool call"):
        parse_native(Completion(text="hello"))
    with pytest.raises(FormatError, match="2 tool calls"):
        parse_native(Completion(tool_calls=[call, call]))
    with pytest.raises(FormatError, match="not valid JSON"):
        parse_native(Completion(tool_calls=[ToolCall(id="c", name="bash", parse_error="Expecting value")]))


@pytest.mark.parametrize("action", [
    Action(tool="bash", arguments={"command": "grep -n 'def add' calc/*.py"}),
    Action(tool="str_replace_editor", arguments={"command": "str_replace", "path": "a.py",
                                                  "old_str": "a - b", "new_str": "a + b"}),
    Action(tool="str_replace_editor", arguments={"command": "view", "path": "a.py", "view_range": [1, 5]}),
    Action(tool="submit"),
])
def test_render_text_parses_back_to_the_same_action(action: Action) -> None:
    assert parse_text(render_text("why", action)) == ("why", action)


def _steps() -> list[Step]:
    return [
        Step(index=0, source="student", model="hf:s", format="text", raw_text="look\n```bash\nls\n```",
             thought="look", action=Action(tool="bash", arguments={"command": "ls"}), observation="a.py"),
        Step(index=1, source="student", model="hf:s", format="text", raw_text="hmm", format_error="no action"),
        Step(index=2, source="expert", model="oracle", format="native", thought="view it",
             action=Action(tool="str_replace_editor", arguments={"command": "view", "path": "a.py"}),
             observation="1 x"),
    ]


def test_one_history_renders_for_a_text_student_and_a_native_expert(swe_repo) -> None:
    text = render(swe_repo.task, _steps(), "text")
    assert [m.role for m in text] == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert text[2].content == "look\n```bash\nls\n```"  # the student's own words, verbatim
    assert text[5].content.startswith("FORMAT ERROR")
    assert "<function=str_replace_editor>" in text[6].content  # the expert's call, in the student's format
    assert parse_text(text[6].content)[1] == _steps()[2].action
    assert text[7].content == "OBSERVATION:\n1 x"

    native = render(swe_repo.task, _steps(), "native")
    assert [m.role for m in native] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool"]
    assert native[2].tool_calls[0].name == "bash" and native[3].tool_call_id == native[2].tool_calls[0].id
    assert native[0].content != text[0].content  # each format has its own system prompt
    assert swe_repo.task.problem_statement in native[1].content


def test_truncate_keeps_head_and_tail() -> None:
    out = truncate("A" * 100 + "B" * 100, 50)
    assert out.startswith("A" * 25) and out.endswith("B" * 25) and "150 characters elided" in out


def test_editor_runs_in_the_sandbox_and_stays_out_of_the_patch(swe_repo) -> None:
    with EnvSession.open(swe_repo.task, RepoIndex([swe_repo.repos_dir])) as env:
        def edit(**args):
            return execute(Action(tool="str_replace_editor", arguments=args), env)

        assert "def add" in edit(command="view", path="calc/__init__.py").text
        assert "calc/__init__.py" in edit(command="view", path=".").text
        out = edit(command="str_replace", path="calc/__init__.py", old_str="a - b", new_str="a + b")
        assert "has been edited" in out.text and out.exit_code == 0
        assert "did not appear" in edit(command="str_replace", path="calc/__init__.py", old_str="zzz",
                                        new_str="q").text
        assert "Multiple occurrences" in edit(command="str_replace", path="calc/__init__.py", old_str="return",
                                              new_str="q").text
        assert "+    return a + b" in env.diff() and "oec-editor" not in env.diff()
        assert "undone" in edit(command="undo_edit", path="calc/__init__.py").text
        # files are named as the model wrote them: never the workspace's random host folder
        shown = [edit(command="view", path="calc/__init__.py").text, edit(command="view", path=".").text,
                 edit(command="view", path="calc/nothere.py").text]
        assert shown[0].startswith("Here's the result of running `cat -n` on calc/__init__.py:")
        assert "\n./calc/__init__.py" in shown[1] and "The path calc/nothere.py does not exist" in shown[2]
        assert not any(str(env.workspace.path) in text for text in shown), shown
        assert env.diff() == ""
        assert "created" in edit(command="create", path="calc/extra.py", file_text="X = 1\n").text
        assert "+X = 1" in env.diff()
        assert execute(Action(tool="bash", arguments={"command": "exit 3"}), env).text.endswith("[exit code 3]")
        assert execute(Action(tool="submit"), env).submitted


def test_git_history_is_readable_inside_the_sandbox_when_repos_live_under_tmp(swe_repo) -> None:
    """A `git clone --shared` workspace borrows objects from the source repo; the private /tmp must not hide it."""
    assert str(swe_repo.repos_dir).startswith("/tmp")
    with EnvSession.open(swe_repo.task, RepoIndex([swe_repo.repos_dir])) as env:
        result = env.run(f"git diff {swe_repo.task.base_commit} --stat && git log --oneline | head -1")
        assert result.exit_code == 0, result.output
        assert "buggy" in result.output
