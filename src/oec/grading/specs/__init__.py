"""How each repository's tests are run and read: SWE-bench's and SWE-smith's facts, by `repo` and `version`.

The facts (test command, log parser, commands run before the tests) come from
the maintained sources, regenerated into `repo_specs.json` by
`scripts/regenerate_repo_specs.py` (swebench 4.1.0's Python specs, swesmith
0.0.9's Python profiles). This module only interprets them:

- which oec parser reads each of their parsers' logs, and which bends of test
  ids their parsers made (`oec.grading.test_ids`), so the ids in their task
  files still match;
- the test command of a row: a row's own `test_cmd` wins; else SWE-bench's
  command with its test directives (the files test_patch touches; for django,
  test modules), or SWE-smith's whole-suite command (or with the deciding test
  files, for profiles that test a subset); else pytest over the files that
  hold the deciding tests and those test_patch touches.
"""

from __future__ import annotations

import functools
import json
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oec.grading.patch_files import PatchParseError, files_touched
from oec.tasks.model import Task

__all__ = ["RepoSpec", "SPECS_FILE", "spec_for", "test_command"]

SPECS_FILE = Path(__file__).with_name("repo_specs.json")

#: their parser (by function or profile class name) -> (oec's parser, the id bends their parser made)
_SWEBENCH_PARSERS = {
    "parse_log_pytest": ("pytest", ("cut-at-space",)),
    "parse_log_seaborn": ("pytest", ("cut-at-space",)),
    "parse_log_pytest_options": ("pytest", ("option-paths",)),
    "parse_log_matplotlib": ("pytest", ("mouse-buttons",)),
    "parse_log_pytest_v2": ("pytest", ("message-suffix",)),  # the whole id, spaces and some messages included
    "parse_log_django": ("django", ()),
    "parse_log_sympy": ("sympy", ()),
}
_SWESMITH_PARSERS = {
    "PythonProfile": ("pytest", ("cut-at-space",)),     # `^(\S+)\s+STATUS`: verbose lines, the id up to a space
    "AutogradAc044f0d": ("pytest", ("cut-at-space",)),  # pytest-xdist's `[gwN] STATUS id`
    "Paramiko23f92003": ("pytest", ("cut-at-space",)),  # `STATUS id`: the -rA summary
    "MypyE93f06ce": ("pytest", ("cut-at-space",)),      # the last word of a PASSED/FAILED line
    "TornadoD5ac65c1": ("unittest", ()),                # `name ... ok`
    "PythonSlugify872b3750": ("unittest", ()),
}


@dataclass(frozen=True)
class RepoSpec:
    """How one repository (at one version) runs and reports its tests."""

    source: str                       # "swebench", "swesmith" or "default"
    test_cmd: str                     # without the tests to run (see `test_command`)
    log_parser: str                   # oec.grading.log_parsers.PARSERS key, for a run without oec's report
    id_rules: tuple[str, ...]         # oec.grading.test_ids.ID_RULES keys
    selection: str                    # "files", "django-modules", "suite", "deciding-files", "k-names"
    env_setup: tuple[str, ...] = ()   # exports run before the tests
    reinstall: str | None = None      # the install command SWE-bench repeats before the tests (images only)


@functools.lru_cache(maxsize=1)
def _specs() -> dict[str, Any]:
    return json.loads(SPECS_FILE.read_text(encoding="utf-8"))


def _swebench_spec(task: Task) -> RepoSpec | None:
    repo = _specs()["swebench"]["repos"].get(task.repo)
    if repo is None:
        return None
    versions = repo["versions"]
    spec = versions.get(task.version or "") or versions[sorted(versions, key=_version_key)[-1]]
    parser, rules = _SWEBENCH_PARSERS.get(repo["log_parser"], ("pytest", ("cut-at-space",)))
    return RepoSpec("swebench", spec["test_cmd"], parser, rules, repo["directives"],
                    tuple(spec["eval_commands"]), spec.get("install"))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def _swesmith_spec(task: Task) -> RepoSpec | None:
    profiles = _specs()["swesmith"]["profiles"]
    profile = profiles.get(task.repo) or profiles.get(f"swesmith/{task.instance_id.rsplit('.', 1)[0]}")
    if profile is None:
        return None
    parser, rules = _SWESMITH_PARSERS.get(profile["log_parser"], ("pytest", ("cut-at-space",)))
    selection = {"suite": "suite", "files": "deciding-files"}.get(profile["test_selection"], "k-names")
    return RepoSpec("swesmith", profile["test_cmd"], parser, rules, selection)


DEFAULT_SPEC = RepoSpec("default", "python -m pytest -rA -p no:cacheprovider", "pytest", ("cut-at-space",), "default")


def spec_for(task: Task) -> RepoSpec:
    """The spec of the task's repository (and version); pytest over the deciding files where none is known."""
    return _swebench_spec(task) or _swesmith_spec(task) or DEFAULT_SPEC


def _test_patch_files(task: Task) -> list[str]:
    try:
        return files_touched(task.test_patch) if task.test_patch.strip() else []
    except PatchParseError:
        return []


def _deciding_files(task: Task) -> list[str]:
    return list(dict.fromkeys(t.split("::")[0] for t in task.FAIL_TO_PASS + task.PASS_TO_PASS if "::" in t))


def _directives(task: Task, django: bool) -> list[str]:
    """SWE-bench's test directives: test_patch's files but data files; for django, dotted test modules."""
    skip = tuple(_specs()["swebench"]["non_test_exts"])
    files = [f for f in _test_patch_files(task) if not f.endswith(skip)]
    if not django:
        return files
    modules = []
    for path in files:
        path = path[:-3] if path.endswith(".py") else path
        path = path[len("tests/"):] if path.startswith("tests/") else path
        modules.append(path.replace("/", "."))
    return modules


def test_command(task: Task, spec: RepoSpec | None = None) -> str:
    """The command that runs the task's deciding tests (a row's own `test_cmd` first)."""
    if task.test_cmd:
        return task.test_cmd
    spec = spec or spec_for(task)
    if spec.selection in ("files", "django-modules"):
        tests = _directives(task, django=spec.selection == "django-modules")
    elif spec.selection == "suite":
        tests = []
    elif spec.selection == "k-names":
        names = [t.rsplit("::", 1)[-1] for t in task.FAIL_TO_PASS + task.PASS_TO_PASS]
        return f"{spec.test_cmd} {shlex.quote(' or '.join(names))}" if names else spec.test_cmd
    else:  # "deciding-files", and the default: the files holding the deciding tests, and test_patch's
        tests = list(dict.fromkeys(_deciding_files(task) + _test_patch_files(task)))
    return " ".join([spec.test_cmd, *map(shlex.quote, (posixpath.normpath(t) for t in tests))])


test_command.__test__ = False  # type: ignore[attr-defined]  # a function of oec, not a pytest test
