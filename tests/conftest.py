"""Shared fixtures: a small SWE-bench style repository that is not part of oec."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from oec.tasks.model import Task

CLEAN = {
    "calc/__init__.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_calc.py": "from calc import add, mul\n\n\ndef test_mul():\n    assert mul(3, 4) == 12\n",
    ".gitignore": "__pycache__/\n",
}
BUG = ("return a + b", "return a - b")
NEW_TEST = "\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_calc_repo(repo: Path) -> dict:
    """Create acme/calc at `repo`, `add` broken at its one commit; the SWE-bench row that describes the fix."""
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for name, text in CLEAN.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text.replace(*BUG) if name == "calc/__init__.py" else text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "buggy")
    base = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "calc/__init__.py").write_text(CLEAN["calc/__init__.py"])
    patch = _git(repo, "diff")
    _git(repo, "checkout", "-q", "--", ".")
    with open(repo / "tests/test_calc.py", "a") as fh:
        fh.write(NEW_TEST)
    test_patch = _git(repo, "diff")
    _git(repo, "checkout", "-q", "--", ".")
    return {
        "instance_id": "acme__calc-1", "repo": "acme/calc", "base_commit": base,
        "problem_statement": "add(2, 3) returns -1", "patch": patch, "test_patch": test_patch,
        "FAIL_TO_PASS": '["tests/test_calc.py::test_add"]', "PASS_TO_PASS": '["tests/test_calc.py::test_mul"]',
        "version": "0.1", "environment_setup_commit": base,
    }


@pytest.fixture(scope="module")
def engine():
    """A real docker engine's client (`make test` starts one); without one the test fails and says why."""
    import docker_images

    client = docker_images.connect()
    yield client
    client.close()


@dataclass
class SweRepo:
    repos_dir: Path
    task: Task
    row: dict


@pytest.fixture
def swe_repo(tmp_path: Path) -> SweRepo:
    """acme/calc with `add` broken at base_commit; a SWE-bench row (JSON-string test lists) describing it."""
    repos_dir = tmp_path / "repos"
    row = make_calc_repo(repos_dir / "acme__calc")
    return SweRepo(repos_dir, Task.model_validate(row), row)


def diff_after(task: Task, repos_dir: Path, files: dict[str, str | None]) -> str:
    """The patch a rollout would submit after setting `files` (None: deleting) in a fresh workspace of `task`."""
    from oec.env.repos import RepoIndex
    from oec.env.session import open_session

    with open_session(task, RepoIndex([repos_dir])) as session:
        for name, text in files.items():
            target = session.path / name
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        return session.diff()
