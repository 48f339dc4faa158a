"""The oracle as a teacher: it acts only on what its own observations show (issue 16, item 4).

A privileged expert that jumps to the gold lines teaches a student actions it
cannot infer. These tests run the oracle through the real episode path
(`oec collect --strategy bc --expert oracle`) on the bundled suite and on a
few synthesized tasks, and check every trajectory: each edit's old text was
shown by an earlier observation, no action names the base commit or reads git
history, and the rollout resolves.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oec.agent.actions import Action
from oec.agent.history import Step, render
from oec.models.oracle import OracleProvider, _statement_names
from oec.tasks.bundled import load_bundled_tasks
from oec.tasks.loaders import load_tasks_strict

OEC = [sys.executable, "-m", "oec"]
_NUMBERED = re.compile(r"^ *\d+\t|^\d+[:-]", re.MULTILINE)  # the editor's view, `grep -n -A` on one file
_SED_DELETE = re.compile(r"^sed -i '?(\d+)(?:,(\d+))?d'? (\S+)$")
_HISTORY = re.compile(r"\bgit\s+(?:log|show|reflog|rev-list|blame|cat-file)\b|\bgit\s+diff\s+\S*[0-9a-f]{7,}")


def _oec(*args: str) -> None:
    done = subprocess.run([*OEC, *args], capture_output=True, text=True, timeout=600, env={**os.environ})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _trajectories(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines() if line.strip()]


def _edits(step: dict) -> str | None:
    """The text an editor edit replaces ("" for insert/create), or None when the step is no edit."""
    action = step.get("action") or {}
    args = action.get("arguments") or {}
    if action.get("tool") != "str_replace_editor" or args.get("command") not in ("str_replace", "insert", "create"):
        return None
    return args.get("old_str", "") if args["command"] == "str_replace" else ""


def _shown_lines(observation: str) -> dict[int, str]:
    found = {}
    for line in observation.split("\n"):
        if match := re.match(r"^ *(\d+)\t(.*)$|^(\d+)[:-](.*)$", line):
            number, text = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
            found[int(number)] = text
    return found


def assert_deletes_what_it_saw(steps: list[dict], i: int, removed: list[str]) -> None:
    """A `sed -i 'N[,M]d' path` deletion: the latest observation before it showed those line numbers, holding
    lines the gold patch removes."""
    command = (steps[i].get("action") or {}).get("arguments", {}).get("command", "")
    match = _SED_DELETE.match(command)
    if match is None:
        return
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    shown = _shown_lines(steps[i - 1]["observation"] or "")
    assert all(n in shown for n in range(first, last + 1)), (command, steps[i - 1]["observation"])
    assert all(shown[n] in removed for n in range(first, last + 1)), (command, removed)
    assert steps[i]["thought"].startswith("The view shows"), steps[i]["thought"]


def assert_teaches(trajectory: dict, base_commit: str, removed: list[str] | None = None) -> None:
    steps = trajectory["steps"]
    assert trajectory["reward"]["resolved"], trajectory["instance_id"]
    for i, step in enumerate(steps):
        arguments = json.dumps((step.get("action") or {}).get("arguments") or {})
        assert base_commit not in arguments and base_commit[:7] not in arguments, (i, arguments)
        assert not _HISTORY.search(arguments), (i, arguments)
        assert_deletes_what_it_saw(steps, i, removed or [])
        old = _edits(step)
        if old:  # some earlier observation showed the lines it replaces (views stripped of their numbers)
            seen = [_NUMBERED.sub("", s["observation"] or "") for s in steps[:i]]
            assert any(old in text for text in seen), (trajectory["instance_id"], i, old)
            assert step["thought"].startswith("The view shows"), step["thought"]  # it names its evidence


@pytest.mark.slow
def test_oracle_teaches_on_the_bundled_suite(tmp_path: Path) -> None:
    tasks = {t.instance_id: t for t in load_bundled_tasks()}
    _oec("collect", "--strategy", "bc", "--expert", "oracle", "--out", str(tmp_path / "run"), "--concurrency", "4")
    trajectories = _trajectories(tmp_path / "run")
    assert {t["instance_id"] for t in trajectories} == set(tasks)
    for trajectory in trajectories:
        assert_teaches(trajectory, tasks[trajectory["instance_id"]].base_commit)
        commands = [json.dumps(s["action"]["arguments"]) for s in trajectory["steps"] if s.get("action")]
        assert any("grep -rn" in c for c in commands)  # it localised from what it saw


@pytest.mark.slow
def test_oracle_teaches_on_synthesized_tasks(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    # the families and statements of the CPU miniature: the oracle reads the named function with `grep -n -A`
    # and deletes an injected early return by its line number
    _oec("synth", "--bundled", "--max", "3", "--kinds", "early_return,invert_condition", "--locate",
         "--out", str(out / "tasks.jsonl"))
    tasks = {t.instance_id: t for t in load_tasks_strict(out / "tasks.jsonl")}
    assert tasks
    _oec("collect", str(out / "tasks.jsonl"), "--repos", str(out / "repos"), "--strategy", "bc",
         "--expert", "oracle", "--out", str(tmp_path / "run"), "--concurrency", "4")
    trajectories = _trajectories(tmp_path / "run")
    assert {t["instance_id"] for t in trajectories} == set(tasks)
    for trajectory in trajectories:
        task = tasks[trajectory["instance_id"]]
        removed = [line[1:] for line in task.patch.split("\n") if line.startswith("-") and not line.startswith("---")]
        assert_teaches(trajectory, task.base_commit, removed)
    commands = [s["action"]["arguments"].get("command", "") for t in trajectories for s in t["steps"] if s.get("action")]
    assert any(c.startswith("grep -n -w -A") for c in commands) and any(_SED_DELETE.match(c) for c in commands)


def test_statement_names_are_code_names() -> None:
    statement = ("`slugify` cuts one word too many:\n```python\n>>> from textkit import slugify\n"
                 ">>> slugify('a b', max_length=11)\n```\nAlso RangeSet.remove() breaks.")
    names = _statement_names(statement)
    assert names[:2] == ["slugify", "max_length"] and "RangeSet" in names
    assert "textkit" not in names and "from" not in names


def test_only_a_history_that_moved_head_sends_the_oracle_to_the_base_commit() -> None:
    task = load_bundled_tasks()[0]

    def first_command(student_command: str | None) -> str:
        model = OracleProvider().for_task(task)
        steps = [] if student_command is None else [Step(
            index=0, source="student", model="s", format="native", raw_text="", thought="",
            action=Action(tool="bash", arguments={"command": student_command}), observation="")]
        return asyncio.run(model.complete(render(task, steps, "native"))).tool_calls[0].arguments["command"]

    for quiet in (None, "ls && git status", "git add -A", "git diff"):
        assert task.base_commit not in first_command(quiet)
    for moved in ("git add -A && git commit -qm wip", "git checkout -q -b wip", "git reset --hard HEAD~1"):
        assert first_command(moved).endswith(f"git diff {task.base_commit} --stat")


def test_the_edit_thought_names_a_removed_line_that_also_appears_further_down() -> None:
    """An injected early `return token` before the real one: the thought says which line goes, not
    'rewrite 0 lines as 0' (a membership test saw `return token` on both sides)."""
    from oec.grading.patch_files import Hunk, HunkLine
    from oec.models.oracle import _describe

    body = [(" ", "    def advance(self) -> Token:"), (" ", "        token = self.tokens[self.index]"),
            ("-", "        return token"), (" ", "        self.index += 1"), (" ", "        return token")]
    hunk = Hunk(62, 5, 62, 4, tuple(HunkLine(kind, text) for kind, text in body))
    thought = _describe("calc/parser.py", hunk, "", shown=62)
    assert thought == ("The view shows line 64 of calc/parser.py: `return token`. "
                       "In calc/parser.py, remove 1 line.")


def test_the_edit_quotes_the_changed_lines_and_only_the_context_that_makes_them_unique() -> None:
    from oec.models.oracle import Hunk

    view = ["    def advance(self) -> Token:", "        token = self.tokens[self.index]", "        return token",
            "        self.index += 1", "        return token", "", "    def peek(self) -> Token:"]
    early_return = Hunk(62, 62, tuple(view[:5]), (view[0], view[1], view[3], view[4]))
    edit = early_return.narrowed("\n".join(view))
    # `return token` alone occurs twice in what the view showed: one line after it makes it unique
    assert (edit.old_text, edit.new_text) == ("        return token\n        self.index += 1", "        self.index += 1")
    assert edit.old_start == edit.new_start == 64
    inverted = Hunk(10, 10, ("    x = 1", "    if not (x > 0):", "        y()", "    z()"),
                    ("    x = 1", "    if x > 0:", "        y()", "    z()"))
    edit = inverted.narrowed("\n".join(inverted.old_lines))
    assert (edit.old_text, edit.new_text, edit.old_start) == ("    if not (x > 0):", "    if x > 0:", 11)
    nowhere = inverted.narrowed("")  # the view did not show it: the whole hunk, as before
    assert nowhere == inverted


def _numbered(lines: list[str], first: int, last: int) -> str:
    """What the editor's view of lines [first, last] shows (`cat -n` style)."""
    return "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(first, min(last, len(lines)) + 1))


def test_the_oracle_reads_down_from_the_definition_in_fixed_windows() -> None:
    """Where a change ends is what a student cannot see before it reads: the oracle reads from the `def` line
    grep showed, a fixed number of lines at a time, and edits only once a view shows the changed line."""
    import difflib

    from oec.models.oracle import VIEW_WINDOW, WINDOW_OVERLAP
    from oec.tasks.model import Task

    body = [f"    v{i} = x + {i}" for i in range(30)]
    buggy = ["def helper(x):", "    return long_function(x)", "", "", "def long_function(x):", *body,
             "    if not (x > 0):", "        return -x", "    return x"]
    fixed = [line.replace("if not (x > 0):", "if x > 0:") for line in buggy]
    diff = "".join(difflib.unified_diff([f"{line}\n" for line in buggy], [f"{line}\n" for line in fixed],
                                        "a/pkg/mod.py", "b/pkg/mod.py"))
    task = Task(instance_id="t", repo="o/r", base_commit="0" * 40, patch="diff --git a/pkg/mod.py b/pkg/mod.py\n" + diff,
                problem_statement="The bug is in the function `long_function` in `pkg/mod.py`.",
                FAIL_TO_PASS=["tests/test_mod.py::test_sign"])
    grep = "\n".join(f"./pkg/mod.py:{n}:{line}" for n, line in enumerate(buggy, 1) if "long_function" in line)
    model, steps, views = OracleProvider().for_task(task), [], []
    while True:
        completion = asyncio.run(model.complete(render(task, steps, "native")))
        call, args = completion.tool_calls[0], completion.tool_calls[0].arguments
        if call.name == "str_replace_editor" and args["command"] == "str_replace":
            break
        observation = "(no output)"
        if call.name == "bash" and args["command"].startswith("grep"):
            observation = grep
        elif call.name == "str_replace_editor":
            views.append(args["view_range"])
            observation = "Here's the result of running `cat -n` on pkg/mod.py:\n" + _numbered(buggy, *args["view_range"])
        steps.append(Step(index=len(steps), source="expert", model="oracle", format="native", thought=completion.text,
                          action=Action(tool=call.name, arguments=args), observation=observation))
    step = VIEW_WINDOW - WINDOW_OVERLAP
    # the def is line 5 (not the call on line 2); the changed line 36 is past the first window, inside the second
    assert views == [[5, 5 + VIEW_WINDOW - 1], [5 + step, 5 + step + VIEW_WINDOW - 1]]
    assert "line 5 is `def long_function(x):`" in steps[-2].thought
    assert completion.text.startswith("The view shows line 36 of pkg/mod.py: `if not (x > 0):`")
    assert (args["old_str"], args["new_str"]) == ("    if not (x > 0):", "    if x > 0:")


def test_a_pure_deletion_is_made_by_line_number_and_anything_else_by_str_replace() -> None:
    from oec.models.oracle import Hunk, _deleted_lines

    early = Hunk(10, 10, ("    x = f()", "    return", "    y = g(x)"), ("    x = f()", "    y = g(x)"))
    assert _deleted_lines(early, at=10) == "11"
    two = Hunk(10, 10, ("    a", "    b", "    c", "    d"), ("    a", "    d"))
    assert _deleted_lines(two, at=40) == "41,42"
    apart = Hunk(10, 10, ("    a", "    b", "    c", "    d"), ("    a", "    c"))  # two runs: not one sed range
    inverted = Hunk(10, 10, ("    if not (x):",), ("    if x:",))
    assert _deleted_lines(apart, at=10) == "" and _deleted_lines(inverted, at=10) == ""


def test_the_function_a_statement_names_on_its_own_is_read_first() -> None:
    from oec.models.oracle import _named_functions

    statement = ("`test_unknown_character` fails\n\n- `tests/test_lexer.py::test_unknown_character`: boom\n"
                 "```\npython -m pytest -rA tests/test_lexer.py\n```\n"
                 "The bug is in the function `__init__` (`CalcError.__init__`) in `calc/errors.py`.")
    assert _named_functions(statement) == ["__init__"]
