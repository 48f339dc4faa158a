"""The oracle expert resolves tasks through the agent's tools, from a clean start or a student's broken one.

Everything here is real except the model: real sandboxes, the bundled suite,
and SWE-bench style grading of the final diff. A small local loop stands in
for the episode loop (render -> complete -> parse -> execute -> Step), so
these tests pin the oracle's contract, not the collector's.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oec.agent.actions import Action
from oec.agent.formats import parse_native, render_text
from oec.agent.history import Step, render
from oec.agent.tools import TOOLS, Runner, execute
from oec.env.repos import RepoIndex
from oec.env.sandbox import CommandResult
from oec.env.session import EnvSession
from oec.grading.patch_files import files_touched
from oec.grading.grader import grade
from oec.models.base import Message, Model
from oec.models.oracle import (
    MAX_WINDOWS,
    OracleModel,
    OracleProvider,
    parse_patch,
    parse_repo_state,
)
from oec.models.registry import make_provider
from oec.tasks.bundled import bundled_repos_dir, load_bundled_tasks
from oec.tasks.model import Task

BUNDLED = load_bundled_tasks()
ALLOWED_TOOLS = {"bash", "str_replace_editor", "submit"}
JUNK = ("notes.txt", "scratch/tmp.py")


@pytest.fixture(scope="module")
def bundled_repos() -> RepoIndex:
    return RepoIndex([bundled_repos_dir()])


# ----------------------------------------------------------------------------- the loop and a student


def drive_oracle(task: Task, env: Runner, steps: list[Step], model: OracleModel) -> list[Step]:
    """Let the oracle act on `env` after `steps` until it submits; return its own steps.

    Asserts the contract on every call: one well-formed native tool call of an
    allowed tool, a thought, and never more calls than the cap.
    """
    own: list[Step] = []
    while True:
        assert len(own) < model.max_calls, "the oracle went past its call cap"
        completion = asyncio.run(model.complete(render(task, steps, "native"), TOOLS))
        thought, action = parse_native(completion)  # raises on anything but exactly one valid call
        assert action.tool in ALLOWED_TOOLS
        assert thought
        assert completion.usage.cost_usd == 0.0 and completion.usage.prompt_tokens > 0
        observation = execute(action, env)
        step = Step(index=len(steps), source="expert", model="oracle", format="native",
                    raw_text=completion.text, thought=thought, action=action,
                    observation=observation.text, exit_code=observation.exit_code, usage=completion.usage)
        steps.append(step)
        own.append(step)
        if observation.submitted:
            return own


def student_step(steps: list[Step], env: Runner, thought: str, action: Action | None, error: str | None = None) -> None:
    """Record a text-format student's turn; its action really runs in the env."""
    step = Step(index=len(steps), source="student", model="student", format="text",
                raw_text=render_text(thought, action) if action else thought, thought=thought if action else "",
                action=action, format_error=error)
    if action is not None:
        observation = execute(action, env)
        step.observation, step.exit_code = observation.text, observation.exit_code
    steps.append(step)


def gut_function(text: str, line: int) -> tuple[str, str]:
    """(old, new) that replace the body of the function enclosing 1-based `line` by `pass`."""
    lines = text.split("\n")
    index = line - 1
    while index >= 0 and not re.match(r"^\s*def ", lines[index]):
        index -= 1
    if index < 0:  # module-level code: just drop the line
        return lines[line - 1] + "\n", ""
    indent = len(lines[index]) - len(lines[index].lstrip())
    header_end = index
    while not lines[header_end].rstrip().endswith(":"):
        header_end += 1
    end = header_end + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    while end > header_end + 1 and not lines[end - 1].strip():
        end -= 1
    start = index
    while True:  # grow upwards until the old text is unique (twin functions exist)
        old = "\n".join(lines[start:end])
        if text.count(old) == 1 or start == 0:
            return old, "\n".join(lines[start:header_end + 1] + [" " * (indent + 4) + "pass"])
        start -= 1


def break_like_a_student(task: Task, env: EnvSession, *, commit: bool = False, stage: bool = False) -> list[Step]:
    """A student's history that guts a function the gold patch touches, leaves junk files, and fumbles once.

    `stage` adds everything to the index (as `env.diff()` does), `commit` commits it: both hide the
    changes from a plain `git status` in different ways.
    """
    steps: list[Step] = []
    target = next(f for f in parse_patch(task.patch) if f.kind == "modify")
    student_step(steps, env, "Let me look at the code.",
                 Action(tool="str_replace_editor", arguments={"command": "view", "path": target.old_path}))
    hunk = target.hunks[0]
    changed = next(i for i, line in enumerate(hunk.old_lines) if line not in hunk.new_lines) \
        if any(line not in hunk.new_lines for line in hunk.old_lines) else 0
    text = (env.path / target.old_path).read_text()
    old, new = gut_function(text, hunk.old_start + changed)
    assert text.count(old) == 1
    student_step(steps, env, "I'll simplify this function.",
                 Action(tool="str_replace_editor",
                        arguments={"command": "str_replace", "path": target.old_path, "old_str": old, "new_str": new}))
    student_step(steps, env, "Let me keep some notes.",
                 Action(tool="bash", arguments={"command": f"mkdir -p scratch && echo 'todo: fix' > {JUNK[0]} "
                                                           f"&& echo 'x = 1' > {JUNK[1]}"}))
    student_step(steps, env, "I am not sure what to do next.", None, error="Your reply contained no action.")
    if commit:
        student_step(steps, env, "Save my work.",
                     Action(tool="bash", arguments={"command": "git add -A && git commit -qm wip"}))
    if stage:
        student_step(steps, env, "Stage it.", Action(tool="bash", arguments={"command": "git add -A"}))
    status = env.run(f"git status --porcelain --untracked-files=all && git diff {task.base_commit} --name-only").output
    assert all(name in status for name in (*JUNK, target.old_path))
    return steps


def without_index_lines(diff: str) -> str:
    return "\n".join(line for line in diff.split("\n") if not line.startswith("index "))


def assert_resolves(task: Task, repos: RepoIndex, *, broken: bool, commit: bool = False) -> list[Step]:
    model = OracleProvider().for_task(task)
    with EnvSession.open(task, repos) as env:
        steps = break_like_a_student(task, env, commit=commit) if broken else []
        own = drive_oracle(task, env, steps, model)
        patch = env.diff()
    result = grade(task, patch, repos)
    assert result.resolved, f"{result.status}: {result.reason}\n" + _transcript(own)
    assert sorted(files_touched(patch)) == sorted(files_touched(task.patch)), _transcript(own)
    assert own[-1].action is not None and own[-1].action.tool == "submit"
    assert own[0].action is not None and own[0].action.arguments["command"].startswith(
        'cd "$(git rev-parse --show-toplevel)" && git status --short')
    return own


def _transcript(steps: list[Step]) -> str:
    return "\n".join(f"[{s.index}] {s.thought}\n  {s.action}\n  -> {s.observation[:300]}" for s in steps)


# ----------------------------------------------------------------------------- the bundled suite


@pytest.mark.slow
@pytest.mark.parametrize("task", BUNDLED, ids=lambda t: t.instance_id)
def test_oracle_resolves_every_bundled_task_from_a_clean_start(task: Task, bundled_repos: RepoIndex) -> None:
    own = assert_resolves(task, bundled_repos, broken=False)
    kinds = [s.action.arguments.get("command") if s.action.tool == "str_replace_editor" else s.action.tool
             for s in own if s.action]
    # inspect, localise (grep; the test run and the file list when no name leads there), read (one window or a
    # few down from the lead), edit, test, submit
    assert kinds[-3:] == ["str_replace", "bash", "submit"], kinds
    reads = len(kinds) - 3 - next(i for i, k in enumerate(kinds) if k == "view")
    assert 1 <= reads <= MAX_WINDOWS + 1 and kinds[-3 - reads:-3] == ["view"] * reads, kinds
    assert set(kinds[:-3 - reads]) == {"bash"}, kinds
    assert "passed" in own[-2].observation and "failed" not in own[-2].observation
    assert "tests pass" in own[-1].thought


@pytest.mark.slow
@pytest.mark.parametrize("task", BUNDLED, ids=lambda t: t.instance_id)
def test_oracle_resolves_every_bundled_task_from_a_broken_start(task: Task, bundled_repos: RepoIndex) -> None:
    own = assert_resolves(task, bundled_repos, broken=True)
    restore = own[1].action.arguments["command"]
    assert restore.startswith("git checkout -q HEAD -- ")  # names the files it restores ...
    assert all(name in restore for name in ("notes.txt", "scratch/"))  # ... and the junk it removes
    assert all("[exit code" not in s.observation for s in own)  # no command of its own failed


@pytest.mark.slow
@pytest.mark.parametrize("task", [BUNDLED[i] for i in (0, 5, 10, 16)], ids=lambda t: t.instance_id)
def test_oracle_undoes_a_students_commits(task: Task, bundled_repos: RepoIndex) -> None:
    """Committed changes are invisible to `git status`; the diff against base still shows them."""
    own = assert_resolves(task, bundled_repos, broken=True, commit=True)
    assert own[1].action.arguments["command"].startswith(f"git reset -q --hard {task.base_commit}")


def test_oracle_matches_the_gold_diff_on_a_bundled_task(bundled_repos: RepoIndex) -> None:
    task = BUNDLED[0]
    model = OracleProvider().for_task(task)
    with EnvSession.open(task, bundled_repos) as env:
        drive_oracle(task, env, [], model)
        assert without_index_lines(env.diff()) == without_index_lines(task.patch)


# ----------------------------------------------------------------------------- a harder gold patch

BASE_INIT = '''"""Temperatures."""


class Celsius:
    def __init__(self, value):
        self.value = value

    def scaled(self, factor):
        result = self.value
        result = result * factor
        result = round(result, 2)
        return result


class Fahrenheit:
    def __init__(self, value):
        self.value = value

    def scaled(self, factor):
        result = self.value
        result = result * factor
        result = round(result, 2)
        return result


def describe(x):
    """Say what x is."""
    kind = type(x).__name__
    if kind == "Celsius":
        return "celsius"
    return "temp"
'''
GOLD_INIT = BASE_INIT.replace('''        result = round(result, 2)
        return result


def describe''', '''        result = round(result, 1)
        return result


def describe''').replace('return "temp"', 'return f"temp {x.value}"')
OLDNAME = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(8))
BASE_FILES = {
    "shapes/__init__.py": BASE_INIT,
    "shapes/legacy.py": "OLD = True\n",
    "shapes/noeol.py": "VALUE = 1",
    "shapes/oldname.py": OLDNAME,
    "run.sh": "#!/bin/sh\necho ok\n",
    "tests/test_shapes.py": "from shapes import Celsius\n\n\ndef test_celsius():\n    assert Celsius(1.234).scaled(1) == 1.23\n",
}
GOLD_FILES = {
    "shapes/__init__.py": GOLD_INIT,
    "shapes/new_util.py": "def double(x):\n    return 2 * x\n",
    "shapes/noeol.py": "VALUE = 2\n",
    "shapes/newname.py": OLDNAME.replace("return x + 7", "return x + 70"),
    "run.sh": BASE_FILES["run.sh"],
}
NEW_TESTS = '''

def test_fahrenheit_rounds_to_one_digit():
    from shapes import Fahrenheit
    assert Fahrenheit(1.26).scaled(1) == 1.3


def test_describe_names_the_value():
    from shapes import Fahrenheit, describe
    assert describe(Fahrenheit(3)) == "temp 3"


def test_the_rest():
    import importlib, os
    from shapes.new_util import double
    from shapes.noeol import VALUE
    from shapes.newname import f7
    assert double(2) == 4 and VALUE == 2 and f7(0) == 70
    assert os.access("run.sh", os.X_OK)
    for gone in ("shapes.legacy", "shapes.oldname"):
        try:
            importlib.import_module(gone)
        except ImportError:
            pass
        else:
            raise AssertionError(gone)
'''
F2P = ["tests/test_shapes.py::test_fahrenheit_rounds_to_one_digit",
       "tests/test_shapes.py::test_describe_names_the_value", "tests/test_shapes.py::test_the_rest"]


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(cwd),
           "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)


@dataclass
class HardTask:
    repos: RepoIndex
    task: Task


@pytest.fixture
def repos_root() -> Iterator[Path]:
    """A repos folder OUTSIDE /tmp: workspaces borrow the repo's objects (`clone --shared`), and the
    sandbox's private /tmp would hide a repo under /tmp from git commands run inside it."""
    cache = Path(os.environ.get("OEC_CACHE_DIR") or Path.home() / ".cache" / "oec")
    cache.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="test-oracle-repos-", dir=cache))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def hard_task(repos_root: Path) -> HardTask:
    """A gold patch with everything the bundled suite lacks: two hunks in a file, the first with an old side
    that occurs twice; a new, a deleted and a renamed file; a no-newline-at-EOF change; a mode change."""
    repo = repos_root / "acme__shapes"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _write(repo, BASE_FILES)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "buggy")
    base = _git(repo, "rev-parse", "HEAD").strip()
    for gone in ("shapes/legacy.py", "shapes/oldname.py"):
        (repo / gone).unlink()
    _write(repo, GOLD_FILES)
    (repo / "run.sh").chmod(0o755)
    _git(repo, "add", "-A")
    patch = _git(repo, "diff", "--cached", "-M", base)
    _git(repo, "reset", "-q", "--hard", base)
    with open(repo / "tests/test_shapes.py", "a") as fh:
        fh.write(NEW_TESTS)
    test_patch = _git(repo, "diff")
    _git(repo, "checkout", "-q", "--", ".")
    task = Task(instance_id="acme__shapes-1", repo="acme/shapes", base_commit=base,
                problem_statement="Fahrenheit.scaled rounds wrongly, and more.", patch=patch,
                test_patch=test_patch, FAIL_TO_PASS=F2P, PASS_TO_PASS=["tests/test_shapes.py::test_celsius"])
    kinds = {f.path: f.kind for f in parse_patch(patch)}
    assert kinds == {"shapes/__init__.py": "modify", "shapes/legacy.py": "delete", "shapes/new_util.py": "create",
                     "shapes/noeol.py": "modify", "shapes/newname.py": "patch", "run.sh": "patch"}
    return HardTask(RepoIndex([repos_root]), task)


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "broken"])
def test_oracle_handles_a_harder_patch(hard_task: HardTask, broken: bool) -> None:
    task = hard_task.task
    model = OracleProvider().for_task(task)
    with EnvSession.open(task, hard_task.repos) as env:
        steps = break_like_a_student(task, env, stage=True) if broken else []
        own = drive_oracle(task, env, steps, model)
        patch = env.diff()
        for name, text in GOLD_FILES.items():
            assert (env.path / name).read_text() == text
        assert not (env.path / "shapes/legacy.py").exists() and not (env.path / "scratch").exists()
    result = grade(task, patch, hard_task.repos)
    assert result.resolved, f"{result.status}: {result.reason}\n" + _transcript(own)
    thoughts = [s.thought for s in own]
    assert any("occurs more than once" in t for t in thoughts)  # widened, not fallen back ...
    assert not any("restore the file" in t for t in thoughts)   # ... for the duplicated snippet
    assert sum("as a patch" in t for t in thoughts) == 2  # the rename and the mode change
    assert own[-1].action.tool == "submit" and len(own) <= model.max_calls


SABOTAGE = {
    "rename": "git mv shapes/noeol.py shapes/moved.py",
    "delete": "rm shapes/__init__.py run.sh",
    "branch-commit": "git checkout -q -b wip && echo 'x = 1' >> shapes/__init__.py && echo new > new.txt "
                     "&& git add -A && git commit -qm wip && echo 'y = 2' >> shapes/__init__.py",
    "binary": "printf '\\000\\001\\002' > shapes/legacy.py",
    "many-files": "mkdir -p junk && for i in $(seq 1 2000); do echo $i > junk_$i.txt; done",
    "gold-already-applied": "git apply --whitespace=nowarn gold.diff && rm gold.diff",
}


@pytest.mark.parametrize("name", SABOTAGE)
def test_oracle_recovers_from_other_student_states(hard_task: HardTask, name: str) -> None:
    """Whatever the student left (renames, deletions, commits on a branch, binaries, thousands of files,
    even the fix itself), the oracle ends with exactly the gold change."""
    task = hard_task.task
    model = OracleProvider().for_task(task)
    with EnvSession.open(task, hard_task.repos) as env:
        (env.path / "gold.diff").write_text(task.patch)
        steps: list[Step] = []
        student_step(steps, env, "Trying something.", Action(tool="bash", arguments={"command": SABOTAGE[name]}))
        assert not steps[0].observation.strip().endswith("]"), steps[0].observation  # the sabotage itself ran
        own = drive_oracle(task, env, steps, model)
        patch = env.diff()
        for file, text in GOLD_FILES.items():
            assert (env.path / file).read_text() == text, _transcript(own)
    assert sorted(files_touched(patch)) == sorted(files_touched(task.patch)), _transcript(own)
    assert grade(task, patch, hard_task.repos).resolved, _transcript(own)


# ----------------------------------------------------------------------------- unexpected observations


class GarbageEnv:
    """Answers every command with a random failure, so nothing the oracle expects ever happens."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.commands: list[str] = []

    def run(self, command: str, *, timeout_s: float | None = None, output_bytes: int | None = None) -> CommandResult:
        self.commands.append(command)
        output = self.rng.choice(["", "fatal: not a git repository", "ERROR: No replacement was performed",
                                  "ERROR: Multiple occurrences of old_str", " M a.py\n?? b.txt\n x | 1 +",
                                  "Here's the result of running `cat -n` on x:\n     1\tfoo", "Segmentation fault"])
        return CommandResult(command=command, exit_code=self.rng.choice([0, 1, 2, None]), output=output,
                             truncated=False, timed_out=False, killed_reason=None, duration_s=0.0)


@pytest.mark.parametrize("seed", range(20))
def test_oracle_always_terminates_on_garbage(hard_task: HardTask, seed: int) -> None:
    task = hard_task.task
    model = OracleProvider().for_task(task)
    own = drive_oracle(task, GarbageEnv(seed), [], model)
    assert own[-1].action.tool == "submit" and len(own) <= model.max_calls


def test_call_cap_forces_submit(hard_task: HardTask) -> None:
    model = OracleModel(hard_task.task, max_calls=3)
    own = drive_oracle(hard_task.task, GarbageEnv(0), [], model)
    assert [s.action.tool for s in own][-1] == "submit" and len(own) == 3
    assert "budget" in own[-1].thought


def test_retry_with_the_same_messages_does_not_advance() -> None:
    task = BUNDLED[0]
    model = OracleProvider().for_task(task)
    messages = render(task, [], "native")
    first = asyncio.run(model.complete(messages))
    again = asyncio.run(model.complete(messages))
    assert again == first and model.calls == 1


def test_conversation_not_ending_in_a_tool_message_is_handled() -> None:
    """If its first call's answer is missing (say, a user message), the oracle resets the tree rather than guess."""
    task = BUNDLED[0]
    model = OracleProvider().for_task(task)
    messages = render(task, [], "native")
    asyncio.run(model.complete(messages))
    follow = asyncio.run(model.complete(messages + [Message(role="user", content="hm?")]))
    assert follow.tool_calls[0].arguments["command"].startswith("git reset -q --hard HEAD")


# ----------------------------------------------------------------------------- pieces


def test_parse_patch_reads_sides_and_eof_markers(hard_task: HardTask) -> None:
    files = {f.path: f for f in parse_patch(hard_task.task.patch)}
    init = files["shapes/__init__.py"]
    assert len(init.hunks) == 2
    assert BASE_INIT.count(init.hunks[0].old_text) == 2  # the duplicated old side
    assert init.hunks[1].new_text in GOLD_INIT
    noeol = files["shapes/noeol.py"].hunks[0]
    assert (noeol.old_text, noeol.new_text) == ("VALUE = 1", "VALUE = 2\n")
    assert files["shapes/new_util.py"].new_content == GOLD_FILES["shapes/new_util.py"]
    assert files["shapes/newname.py"].old_path == "shapes/oldname.py"
    assert parse_patch("") == []


def test_trimmed_hunk_drops_blank_edge_context_only() -> None:
    from oec.models.oracle import Hunk

    hunk = Hunk(10, 12, ("", "", "def f():", "    return 1", ""), ("", "", "def f():", "    return 2", ""))
    trimmed = hunk.trimmed()
    assert (trimmed.old_start, trimmed.new_start) == (12, 14)
    assert (trimmed.old_text, trimmed.new_text) == ("def f():\n    return 1", "def f():\n    return 2")
    blank_only = Hunk(3, 3, ("", ""), ("", "x = 1", ""))
    assert blank_only.trimmed() == blank_only  # nothing solid would be left to locate it by


def test_parse_repo_state_sorts_lines() -> None:
    state = parse_repo_state(" M a.py\n?? junk/\nA  new.py\n a.py   | 3 ++-\n new.py | 1 +\n"
                             " 2 files changed, 3 insertions(+), 1 deletion(-)")
    assert state.status == [(" M", "a.py"), ("??", "junk/"), ("A ", "new.py")]
    assert state.stat == ["a.py", "new.py"] and state.untracked == ["junk/"]
    assert state.dirty and not state.ambiguous and not state.unknown
    assert not parse_repo_state("(no output)").dirty
    assert parse_repo_state(" a.py => b.py | 0\n").ambiguous
    assert parse_repo_state("fatal: not a git repository").unknown


def test_registry_builds_the_oracle() -> None:
    provider = make_provider("oracle")
    assert provider.spec == "oracle"
    model = provider.for_task(BUNDLED[0])
    assert isinstance(model, Model) and model.native_tools
    assert provider.for_task(BUNDLED[0]) is not model  # fresh state per rollout
    with pytest.raises(ValueError):
        make_provider("oracle:gpt")
    with pytest.raises(ValueError, match="gold patch"):
        provider.for_task(BUNDLED[0].model_copy(update={"patch": ""}))
