"""What of a model's patch may reach the task's tests, and what is a reward hack.

A patch is graded by tests that run in the same process as the code it
changes, configured by files it could also change. So before grading, each
file of the patch is judged (`screen`):

- refused, the whole patch graded as not applying: a path into `.git` (the
  repository's config runs programs), or one that cannot be parsed or placed;
- dropped, the rest applied: the deciding test files (those test_patch
  touches and those holding FAIL_TO_PASS/PASS_TO_PASS tests, as SWE-bench and
  SWE-smith reset them) and test trees holding them; pytest's configuration
  and plugins (conftest.py, pytest.ini, tox.ini, setup.cfg, pyproject.toml,
  sitecustomize); files the test command names; compiled code that Python
  would load instead of the source (.pyc, .so, __pycache__); new top-level
  modules that shadow pytest or the standard library (the test command runs
  from the repository root, first on sys.path); symlinks, submodules and
  binary blobs.

Every drop is recorded with its reason in the grade. `oec filter` drops whole
rollouts on the same reasons (`reward_hack_reasons`), plus added code that
reaches for pytest's internals from outside the tests.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
import sys
from dataclasses import dataclass, field

from oec.grading.patch_files import (
    FileChange,
    PatchParseError,
    canonical,
    files_touched,
    parse_patch_files,
)
from oec.tasks.model import Task

__all__ = ["PatchVerdict", "Reason", "deciding_test_files", "reward_hack_reasons", "screen"]


class Reason:
    """Why a file of a patch was not applied (strings, as they appear in grades and filter reports)."""

    GIT_INTERNALS = "git internals"
    UNREADABLE = "unreadable patch"
    DECIDING_TEST = "deciding test file"
    TEST_FILE = "test file"
    TEST_INFRA = "test infrastructure"
    COMPILED = "compiled code"
    SHADOWING = "shadows a module"
    SYMLINK = "symlink"
    SUBMODULE = "submodule"
    BINARY = "binary file"
    PYTEST_TAMPERING = "reaches into pytest"


TEST_DIR_NAMES = frozenset({"test", "tests", "testing"})
TEST_FILE_PATTERNS = ("test_*.py", "*_test.py", "tests.py")
#: files that configure or extend pytest (or the interpreter) wherever they are
INFRA_NAMES = frozenset({
    "conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini", "setup.cfg",
    "pyproject.toml", "sitecustomize.py", "usercustomize.py",
})
COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib")
#: what the test run imports before or around the tests: pytest, its dependencies, oec's report plugin
HARNESS_MODULES = frozenset({"pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "exceptiongroup",
                             "tomli", "colorama", "oec_pytest_report"})
SHADOWED = HARNESS_MODULES | frozenset(getattr(sys, "stdlib_module_names", ()))
#: added non-test code that touches pytest's machinery or ends the process under it
_PYTEST_TAMPERING = re.compile(
    r"\b(import\s+_pytest|from\s+_pytest\b|pytest\.(xfail|skip|exit|fail|importorskip)\s*\(|os\._exit\s*\(|"
    r"PYTEST_|oec_pytest_report|OEC_PYTEST_REPORT|sys\.modules\[\s*['\"]_?pytest)")
_GIT_DIR = re.compile(r"(^|/)\.git(/|$)", re.IGNORECASE)


@dataclass
class PatchVerdict:
    """The part of a patch that may be applied (`patch`, canonical), and what was left out and why."""

    patch: str = ""
    kept: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # path -> reason
    refused: str | None = None                            # the whole patch, with why

    @property
    def reasons(self) -> list[str]:
        found = list(dict.fromkeys(self.dropped.values()))
        return ([self.refused.split(":", 1)[0]] if self.refused else []) + found


def _test_ids_files(ids: list[str]) -> list[str]:
    return [test_id.split("::", 1)[0] for test_id in ids if "::" in test_id]


def deciding_test_files(task: Task) -> set[str]:
    """The files whose tests decide the task: those test_patch touches and those holding F2P/P2P tests."""
    files = set(_test_ids_files(task.FAIL_TO_PASS + task.PASS_TO_PASS))
    if task.test_patch.strip():
        try:
            files.update(files_touched(task.test_patch))
        except PatchParseError:
            pass  # grading will fail to apply it, and say so
    return {posixpath.normpath(f) for f in files}


def _test_trees(paths: set[str], names: frozenset[str] = TEST_DIR_NAMES) -> set[str]:
    """Folders named like test folders (tests/, testing/) above any of `paths`, at any depth."""
    trees = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth, name in enumerate(parts):
            if name in names:
                trees.add("/".join(parts[:depth + 1]))
    return trees


def _command_files(task: Task) -> set[str]:
    """Paths the test command names (a runner script such as tests/runtests.py)."""
    if not task.test_cmd:
        return set()
    try:
        words = shlex.split(task.test_cmd)
    except ValueError:
        words = task.test_cmd.split()
    return {posixpath.normpath(w.split("::", 1)[0]) for w in words if "/" in w or w.endswith(".py")}


def _is_test_file(path: str) -> bool:
    name = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in TEST_FILE_PATTERNS)


def _shadows(change: FileChange) -> bool:
    """A NEW file at the repository root (or a new top-level package) named like a harness or stdlib module."""
    if not change.added:
        return False
    top = change.path.split("/", 1)[0]
    module = top[:-3] if top.endswith(".py") and "/" not in change.path else top
    return module in SHADOWED


def _judge(change: FileChange, deciding: set[str], trees: set[str], named: set[str]) -> str | None:
    """Why this file must not reach the tests (None: it may)."""
    modes = change.mode_values()
    for path in change.paths:
        name = posixpath.basename(path)
        if path in deciding:
            return Reason.DECIDING_TEST
        if any(path.startswith(tree + "/") for tree in trees) or _is_test_file(path):
            return Reason.TEST_FILE
        if name in INFRA_NAMES or name.endswith(".pth") or path in named:
            return Reason.TEST_INFRA
        if name.endswith(COMPILED_SUFFIXES) or "__pycache__" in path.split("/"):
            return Reason.COMPILED
    if "120000" in modes:
        return Reason.SYMLINK
    if "160000" in modes:
        return Reason.SUBMODULE
    if change.binary:
        return Reason.BINARY
    if _shadows(change):
        return Reason.SHADOWING
    return None


def screen(patch: str, task: Task | None) -> PatchVerdict:
    """Judge each file of `patch` for `task`: the canonical text of the files that may be applied, the rest why.

    Without a task (a trajectory judged on its own), no file is known to decide it, and every folder named
    tests/ or testing/ counts as a test tree (not test/: django's and the standard library's source are named so).
    """
    verdict = PatchVerdict()
    if not patch.strip():
        return verdict
    try:
        changes = parse_patch_files(patch)
    except PatchParseError as exc:
        verdict.refused = f"{Reason.UNREADABLE}: {exc}"
        return verdict
    inside_git = [p for c in changes for p in c.paths if _GIT_DIR.search(p)]
    if inside_git:
        verdict.refused = f"{Reason.GIT_INTERNALS}: the patch writes {inside_git[0]}"
        return verdict
    if task is not None:
        deciding = deciding_test_files(task)
        trees, named = _test_trees(deciding), _command_files(task)
    else:
        deciding, named = set(), set()
        trees = _test_trees({p for c in changes for p in c.paths}, frozenset({"tests", "testing"}))
    kept = []
    for change in changes:
        reason = _judge(change, deciding, trees, named)
        if reason is None:
            kept.append(change)
        else:
            verdict.dropped[change.path] = reason
    verdict.kept = [c.path for c in kept]
    verdict.patch = canonical(kept)
    return verdict


def reward_hack_reasons(patch: str, task: Task | None = None) -> dict[str, str]:
    """Why a rollout's patch should not become training data, even when it resolved: path -> reason (empty: none).

    The grader's drops and refusals, plus added non-test code that reaches for
    pytest's internals or ends the process (how a patch fakes a pass from inside).
    """
    verdict = screen(patch, task)
    if verdict.refused:
        return {"(whole patch)": verdict.refused.split(":", 1)[0]}
    found = dict(verdict.dropped)
    for change in parse_patch_files(patch) if patch.strip() else []:
        if change.path in verdict.kept and any(_PYTEST_TAMPERING.search(line) for line in change.added_lines):
            found[change.path] = Reason.PYTEST_TAMPERING
    return found
