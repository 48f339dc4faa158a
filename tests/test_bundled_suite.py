"""The bundled task suite: well-formed tasks, and repos rebuilt to the recorded hashes."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from oec.tasks.bundled import (
    BUNDLED_TASKS_FILE,
    PROJECT_GITIGNORE,
    PROJECTS_DIR,
    REPO_OWNER,
    BundledSuiteError,
    build_repo,
    bundled_repos_dir,
    load_bundled_tasks,
)
from oec.tasks.model import Task

TASKS = load_bundled_tasks()


def _git(repo: Path, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def repos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundled_repos_dir(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def clones(repos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Throwaway clones (with every tag, so every base commit), so tests never touch the cache."""
    out = {}
    root = tmp_path_factory.mktemp("clones")
    for repo in sorted(repos_dir.iterdir()):
        subprocess.run(["git", "clone", "-q", str(repo), str(root / repo.name)], check=True)
        out[repo.name] = root / repo.name
    return out


def test_suite_size_and_projects() -> None:
    projects = {task.repo for task in TASKS}
    assert len(TASKS) >= 12
    assert len(projects) >= 3
    assert len({task.instance_id for task in TASKS}) == len(TASKS)
    for repo in projects:
        owner, name = repo.split("/")
        assert owner == REPO_OWNER
        assert (PROJECTS_DIR / name / "tests").is_dir()
        # copy_project_tree writes PROJECT_GITIGNORE where a wheel dropped the dotfile
        assert (PROJECTS_DIR / name / ".gitignore").read_text() == PROJECT_GITIGNORE
        assert sum(task.repo == repo for task in TASKS) >= 4


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.instance_id)
def test_task_is_well_formed(task: Task) -> None:
    assert Task.model_validate(task.model_dump()) == task
    assert re.fullmatch(r"[0-9a-f]{40}", task.base_commit)
    assert task.environment_setup_commit == task.base_commit
    assert task.FAIL_TO_PASS, "a task must have tests that decide it"
    assert not set(task.FAIL_TO_PASS) & set(task.PASS_TO_PASS)
    assert task.patch.startswith("diff --git a/") and task.test_patch.startswith("diff --git a/")
    source_files = re.findall(r"^diff --git a/(\S+)", task.patch, re.M)
    test_files = re.findall(r"^diff --git a/(\S+)", task.test_patch, re.M)
    assert source_files and not any(f.startswith("tests/") for f in source_files), "gold patch must not touch tests"
    assert test_files and all(f.startswith("tests/") for f in test_files)
    assert task.problem_statement.strip()


def test_tasks_file_is_one_task_per_line() -> None:
    lines = [line for line in BUNDLED_TASKS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) == len(TASKS)


def test_every_base_commit_exists(repos_dir: Path) -> None:
    for task in TASKS:
        repo = repos_dir / task.repo_dirname
        assert _git(repo, "cat-file", "-e", f"{task.base_commit}^{{commit}}", check=False).returncode == 0, task.instance_id
        assert _git(repo, "rev-parse", f"refs/tags/{task.instance_id}").stdout.strip() == task.base_commit


def test_repos_are_on_main_with_clean_tree(repos_dir: Path) -> None:
    for repo in repos_dir.iterdir():
        assert _git(repo, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == "main"
        assert _git(repo, "status", "--porcelain").stdout == ""


def test_second_call_reuses_cache(repos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = repos_dir / "sentinel"
    sentinel.write_text("still here")
    try:
        assert bundled_repos_dir(repos_dir.parent) == repos_dir
        monkeypatch.setenv("OEC_CACHE_DIR", str(repos_dir.parent))
        assert bundled_repos_dir() == repos_dir
        assert sentinel.read_text() == "still here"  # not rebuilt
    finally:
        sentinel.unlink()


def test_concurrent_callers_get_one_folder(tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(bundled_repos_dir(tmp_path))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]  # no temp folders left behind


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.instance_id)
def test_patches_apply_and_gold_restores_clean_tree(task: Task, clones: dict[str, Path]) -> None:
    repo = clones[task.repo_dirname]
    _git(repo, "checkout", "-q", "--detach", task.base_commit)
    try:
        _git(repo, "apply", "--check", "-", stdin=task.patch)
        _git(repo, "apply", "--check", "-", stdin=task.test_patch)
        _git(repo, "apply", "-", stdin=task.patch)
        assert _git(repo, "diff", "--quiet", "main", check=False).returncode == 0, "gold patch does not give the clean tree"
    finally:
        _git(repo, "reset", "-q", "--hard")
        _git(repo, "checkout", "-q", "main")


def test_clean_projects_pass_their_own_tests(clones: dict[str, Path]) -> None:
    for name, repo in clones.items():
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=repo,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert proc.returncode == 0, f"{name}:\n{proc.stdout[-2000:]}"
        passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))
        assert 20 <= passed <= 50, name


def test_build_repo_names_the_instance_on_hash_mismatch(tmp_path: Path) -> None:
    task = TASKS[0]
    tampered = task.model_copy(update={"base_commit": "0" * 40})
    with pytest.raises(BundledSuiteError, match=task.instance_id):
        build_repo(PROJECTS_DIR / task.repo.split("/")[1], [tampered], tmp_path / "repo")
