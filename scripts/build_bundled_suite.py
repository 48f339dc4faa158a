"""Generate src/oec/tasks/bundled/tasks.jsonl from scripts/bundled_suite/bugs.yaml.

Run by hand (dev time) after changing a bundled project or a bug spec, then
commit the regenerated tasks.jsonl together with the change:

    .venv/bin/python scripts/build_bundled_suite.py

For each spec in bugs.yaml it:

1. builds a temporary git repo of the clean project (the same deterministic
   commits as `oec.tasks.bundled.build_repo`), applies the spec's text
   replacements on a detached clean checkout and commits -> base_commit;
2. takes the gold `patch` = diff buggy base -> clean tree, and `test_patch` =
   diff appending the spec's new tests to existing test files;
3. validates like the SWE-bench harness: runs
   ``python -m pytest -rA -p no:cacheprovider <test files>`` at base+test_patch
   and at base+gold+test_patch; FAIL_TO_PASS = failing before, passing after
   (must be non-empty and contain only the new tests); PASS_TO_PASS = passing
   both times; every test must pass after the gold patch;
4. writes tasks.jsonl, then checks that `build_repo` rebuilds every
   base_commit from the written tasks.

Exit status 1, with the reasons, when any spec fails; nothing is written then.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from oec.grading.log_parsers import PASSING, TestStatus, parse_pytest_log
from oec.tasks.bundled import (
    BUNDLED_TASKS_FILE,
    PROJECTS_DIR,
    REPO_OWNER,
    build_repo,
    clean_commit_message,
    commit_all,
    copy_project_tree,
    git,
    init_repo,
    inject_commit_message,
)
from oec.tasks.model import Task

SPECS_FILE = Path(__file__).resolve().parent / "bundled_suite" / "bugs.yaml"
VERSION = "0.1"
CREATED_AT = "2025-01-01T00:00:00Z"
_DIFF = ("diff", "--no-color", "--no-ext-diff", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/")


class SpecError(Exception):
    """A bug spec that does not yield a valid task."""


def _inject(repo: Path, spec: dict) -> None:
    """Apply the spec's text replacements; each `old` must occur exactly once."""
    for edit in spec["bug"]:
        path = repo / edit["file"]
        text = path.read_text(encoding="utf-8")
        count = text.count(edit["old"])
        if count != 1:
            raise SpecError(f"{edit['file']}: `old` occurs {count} times, expected exactly once: {edit['old']!r}")
        path.write_text(text.replace(edit["old"], edit["new"]), encoding="utf-8")


def _append_tests(repo: Path, tests: dict[str, str]) -> None:
    for rel, code in tests.items():
        path = repo / rel
        if not path.is_file():
            raise SpecError(f"tests must be appended to an existing file, {rel} does not exist")
        text = path.read_text(encoding="utf-8").rstrip("\n")
        path.write_text(f"{text}\n\n\n{code.strip(chr(10))}\n", encoding="utf-8")


def _run_tests(repo: Path, files: list[str]) -> tuple[dict[str, TestStatus], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *files],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"},
    )
    log = proc.stdout + proc.stderr
    return parse_pytest_log(log), log


def _new_test_names(tests: dict[str, str]) -> set[str]:
    """Ids (without parametrize suffix) of the test functions a spec appends."""
    return {f"{rel}::{name}" for rel, code in tests.items() for name in re.findall(r"^def (test_\w+)", code, re.M)}


def build_task(repo: Path, clean: str, spec: dict) -> Task:
    """Inject one spec's bug into the clean repo, derive patches, validate, and return the Task."""
    instance_id = spec["instance_id"]
    git(repo, "checkout", "-q", "--detach", clean)
    _inject(repo, spec)
    base = commit_all(repo, inject_commit_message(instance_id))
    patch = git(repo, *_DIFF, base, clean)
    if not patch:
        raise SpecError("the bug changes nothing")
    _append_tests(repo, spec["tests"])
    test_patch = git(repo, *_DIFF, "HEAD")
    git(repo, "reset", "-q", "--hard", base)

    files = sorted(spec["tests"])
    git(repo, "apply", "-", stdin=test_patch)
    before, _ = _run_tests(repo, files)
    git(repo, "apply", "-", stdin=patch)
    after, log_after = _run_tests(repo, files)
    git(repo, "reset", "-q", "--hard", base)

    failing_after = [t for t, s in after.items() if s not in PASSING]
    if failing_after or not after:
        raise SpecError(f"tests fail with the gold patch: {failing_after or 'no tests ran'}\n{log_after[-3000:]}")
    f2p = [t for t in after if before.get(t) not in PASSING]
    p2p = [t for t in after if before.get(t) in PASSING]
    if not f2p:
        raise SpecError("no test fails at the base commit: the new tests do not catch the bug")
    new = _new_test_names(spec["tests"])
    caught_old = [t for t in f2p if t.split("[", 1)[0] not in new]
    if caught_old:
        raise SpecError(f"the bug also breaks existing tests {caught_old}; they should stay PASS_TO_PASS")
    return Task(
        instance_id=instance_id,
        repo=f"{REPO_OWNER}/{spec['project']}",
        base_commit=base,
        problem_statement=spec["problem_statement"].rstrip() + "\n",
        patch=patch,
        test_patch=test_patch,
        FAIL_TO_PASS=f2p,
        PASS_TO_PASS=p2p,
        version=VERSION,
        environment_setup_commit=base,
        created_at=CREATED_AT,
    )


def build_all(specs: list[dict], workdir: Path) -> list[Task]:
    tasks: list[Task] = []
    errors: list[str] = []
    clean_by_project: dict[str, tuple[Path, str]] = {}
    for spec in specs:
        project = spec["project"]
        if project not in clean_by_project:
            repo = workdir / project
            init_repo(repo)
            copy_project_tree(PROJECTS_DIR / project, repo)
            clean_by_project[project] = (repo, commit_all(repo, clean_commit_message(project)))
        repo, clean = clean_by_project[project]
        try:
            task = build_task(repo, clean, spec)
        except Exception as exc:  # report every broken spec at once, not only the first
            errors.append(f"{spec['instance_id']}: {exc}")
            continue
        tasks.append(task)
        print(f"{task.instance_id}: base {task.base_commit[:10]}  F2P {len(task.FAIL_TO_PASS)}  P2P {len(task.PASS_TO_PASS)}")
    if errors:
        raise SystemExit("invalid specs:\n" + "\n".join(errors))
    return tasks


def verify_rebuild(tasks: list[Task], workdir: Path) -> None:
    """Rebuild every project's repo from the written tasks, as users will, and check the hashes."""
    by_project: dict[str, list[Task]] = {}
    for task in tasks:
        by_project.setdefault(task.repo.split("/", 1)[1], []).append(task)
    for project, project_tasks in by_project.items():
        build_repo(PROJECTS_DIR / project, project_tasks, workdir / "rebuild" / project)


def main() -> None:
    specs = yaml.safe_load(SPECS_FILE.read_text(encoding="utf-8"))["tasks"]
    ids = [spec["instance_id"] for spec in specs]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate instance ids in bugs.yaml")
    with tempfile.TemporaryDirectory(prefix="oec-bundled-build-") as tmp:
        tasks = build_all(specs, Path(tmp))
        lines = [json.dumps(t.model_dump(mode="json", exclude_none=True), ensure_ascii=False) for t in tasks]
        BUNDLED_TASKS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        verify_rebuild([Task.model_validate_json(line) for line in lines], Path(tmp))
    print(f"wrote {len(tasks)} tasks to {BUNDLED_TASKS_FILE}; build_repo reproduces every base_commit")


if __name__ == "__main__":
    main()
