"""Task rows (SWE-bench shape) from valid outcomes: the bug as base_commit, the fix as `patch`.

`test_patch` is empty (the tests are already in the repository); `test_cmd`
runs the deciding tests: pytest over the test files that hold the
FAIL_TO_PASS tests, and PASS_TO_PASS is the passing tests of those files
(as SWE-bench's rows list the tests of the files the test patch touches).
With a `--test-cmd` of the user's, rows run that command and keep every
passing test. The `synth` field holds the metadata: kind, file, function,
lines changed, F2P and P2P counts.
"""

from __future__ import annotations

import ast
import shlex

from oec.synth.bugrepo import BugRepo
from oec.synth.statement import location_hint, template_statement, write_with_model
from oec.synth.validate import Outcome
from oec.tasks.model import Task

__all__ = ["DEFAULT_TEST_CMD", "build_row", "instance_id_for", "row_test_cmd"]

DEFAULT_TEST_CMD = "python -m pytest -rA -p no:cacheprovider"


def instance_id_for(repo: str, candidate_id: str) -> str:
    """`owner__name.synth-<hash>`: names no kind, file or function (workspaces and logs carry the id)."""
    return f"{repo.replace('/', '__')}.synth-{candidate_id[:10]}"


def _files_of(tests: list[str]) -> list[str]:
    return list(dict.fromkeys(t.split("::", 1)[0] for t in tests))


def row_test_cmd(outcome: Outcome, validation_cmd: str, custom: bool) -> tuple[str, list[str]]:
    """(test_cmd, PASS_TO_PASS) of the row: narrowed to the failing tests' files unless the command is the user's."""
    if custom:
        return validation_cmd, outcome.pass_to_pass
    files = _files_of(outcome.fail_to_pass)
    p2p = [t for t in outcome.pass_to_pass if t.split("::", 1)[0] in files]
    return " ".join([DEFAULT_TEST_CMD, *map(shlex.quote, files)]), p2p


def test_sources(files: dict[str, str], tests: list[str]) -> dict[str, str]:
    """The source of each failing test function (for a writer model), where it can be found."""
    found: dict[str, str] = {}
    for test_id in tests:
        path, _, rest = test_id.partition("::")
        name = rest.split("::")[-1].split("[", 1)[0]
        code = files.get(path)
        if not code or name in found:
            continue
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                found[name] = ast.get_source_segment(code, node) or ""
                break
    return found


def build_row(outcome: Outcome, content: str, bug_repo: BugRepo, repo: str, validation_cmd: str, *,
              custom_cmd: bool, python_env: str | None = None, writer: str | None = None,
              clean_files: dict[str, str] | None = None, locate: bool = False) -> Task:
    """The task of one valid outcome; commits its bug into `bug_repo` (once).

    `locate` adds where the bug is (function and file) to the statement: an easier task family, for
    students too small to localise from failing tests alone."""
    instance_id = instance_id_for(repo, outcome.id)
    bug = bug_repo.commit_bug(instance_id, outcome.path, content)
    fix = bug_repo.fix_patch(bug)
    test_cmd, p2p = row_test_cmd(outcome, validation_cmd, custom_cmd)
    statement = None
    if writer:
        sources = test_sources(clean_files or {}, outcome.fail_to_pass)
        statement = write_with_model(writer, outcome.fail_to_pass, outcome.messages, sources, fix)
    if statement is None:
        statement = template_statement(outcome.fail_to_pass, outcome.messages, test_cmd, fix, len(p2p))
    if locate:
        statement += "\n" + location_hint(outcome.function, outcome.path) + "\n"
    row = {
        "instance_id": instance_id,
        "repo": repo,
        "base_commit": bug,
        "problem_statement": statement,
        "patch": fix,
        "test_patch": "",
        "FAIL_TO_PASS": outcome.fail_to_pass,
        "PASS_TO_PASS": p2p,
        "version": "synth",
        "environment_setup_commit": bug,
        "test_cmd": test_cmd,
        "synth": {
            "kind": outcome.kind,
            "file": outcome.path,
            "function": outcome.function,
            "line": outcome.line,
            "lines_changed": outcome.lines_changed,
            "f2p": len(outcome.fail_to_pass),
            "p2p": len(p2p),
            "statement": ("model" if writer and statement and "To reproduce:" not in statement else "template")
                         + ("+location" if locate else ""),
        },
    }
    if python_env:
        row["python_env"] = python_env
    return Task.model_validate(row)
