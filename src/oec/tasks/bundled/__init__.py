"""The bundled task suite: small projects written for oec, each with injected bugs.

The embedded default needs tasks that run anywhere, offline and without
docker. So oec ships a few clean Python projects (``projects/<name>/``) and
``tasks.jsonl``: SWE-bench style tasks whose ``base_commit`` is the clean tree
with one bug injected and whose gold ``patch`` removes it.

Shipping git repositories inside a Python package is fragile, so the repos
are rebuilt on demand instead: every commit is made with fixed authors, dates
and messages, so rebuilding gives the very hashes recorded in ``tasks.jsonl``
(``build_repo`` checks this). ``bundled_repos_dir()`` builds them once into a
cache folder laid out like a SWE-bench clones folder (``<owner>__<name>``), so
the rest of oec treats it like any user's ``--repos DIR``.

``scripts/build_bundled_suite.py`` (dev time) creates ``tasks.jsonl`` with the
same helpers, which is what keeps the hashes in agreement.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections import defaultdict
from pathlib import Path

from oec.cache import build_once, cache_root
from oec.env.host_env import scrubbed_env
from oec.tasks.model import Task

__all__ = [
    "BUNDLED_TASKS_FILE",
    "PROJECTS_DIR",
    "PROJECT_GITIGNORE",
    "REPO_OWNER",
    "BundledSuiteError",
    "build_repo",
    "bundled_repos_dir",
    "clean_commit_message",
    "commit_all",
    "copy_project_tree",
    "git",
    "init_repo",
    "inject_commit_message",
    "load_bundled_tasks",
]

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECTS_DIR = PACKAGE_DIR / "projects"
BUNDLED_TASKS_FILE = PACKAGE_DIR / "tasks.jsonl"
REPO_OWNER = "oec-bundled"

#: bump when the way repos are built changes, so stale caches are not reused
_LAYOUT_VERSION = "1"
_DATE = "2025-01-01T00:00:00+00:00"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "oec",
    "GIT_AUTHOR_EMAIL": "oec@example.invalid",
    "GIT_AUTHOR_DATE": _DATE,
    "GIT_COMMITTER_NAME": "oec",
    "GIT_COMMITTER_EMAIL": "oec@example.invalid",
    "GIT_COMMITTER_DATE": _DATE,
}
# settings that could change a commit's bytes (or block it) if a user's config set them
_GIT_OPTIONS = (
    "-c", "commit.gpgsign=false",
    "-c", "tag.gpgsign=false",
    "-c", "core.autocrlf=false",
    "-c", "core.safecrlf=false",
    "-c", "core.fileMode=true",
    "-c", "i18n.commitEncoding=UTF-8",
    "-c", "init.defaultBranch=main",
    "-c", "advice.detachedHead=false",
)
#: every project's .gitignore; written when missing, because wheels built with a
#: plain package-data glob leave dotfiles out, and the file is part of each commit's tree
PROJECT_GITIGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\n"
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".git", ".mypy_cache", ".ruff_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


class BundledSuiteError(RuntimeError):
    """The bundled suite cannot be materialized as recorded (a git failure or a hash mismatch)."""


def clean_commit_message(project: str) -> str:
    return f"Clean tree of {project}"


def inject_commit_message(instance_id: str) -> str:
    return f"Inject bug for {instance_id}"


def _git_env() -> dict[str, str]:
    """Nothing of the caller's environment (no secret, no config that redirects git or changes commit bytes)."""
    return scrubbed_env(_IDENTITY)


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    """Run git in `repo` with a fixed identity and date; return stdout, raise BundledSuiteError on failure."""
    proc = subprocess.run(
        ["git", *_GIT_OPTIONS, *args],
        cwd=repo,
        env=_git_env(),
        input=stdin,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BundledSuiteError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _project_files(project_dir: Path) -> list[Path]:
    """Real source files of a project (relative paths, sorted): no caches, no bytecode."""
    files = []
    for root, dirs, names in os.walk(project_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(names):
            if not name.endswith(_SKIP_SUFFIXES):
                files.append((Path(root) / name).relative_to(project_dir))
    return files


def copy_project_tree(project_dir: Path, dest: Path) -> None:
    """Copy the project's source files into `dest` with mode 0644, so git records the same tree everywhere."""
    for rel in _project_files(project_dir):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((project_dir / rel).read_bytes())
        target.chmod(0o644)
    gitignore = dest / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(PROJECT_GITIGNORE, encoding="utf-8")
        gitignore.chmod(0o644)


def init_repo(dest: Path) -> None:
    """An empty repository at `dest` whose first commit will land on branch `main`."""
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "-q")
    git(dest, "symbolic-ref", "HEAD", "refs/heads/main")


def commit_all(repo: Path, message: str) -> str:
    """Commit the whole work tree deterministically and return the new commit's hash."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def build_repo(project_dir: Path, tasks: list[Task], dest: Path) -> None:
    """Create the git repo for one project at `dest`: the clean tree on `main`, one commit per task.

    Each task's base commit is the clean commit with the gold patch reversed,
    tagged with the instance id (the tag also keeps it from being garbage
    collected). Raises BundledSuiteError when a rebuilt hash differs from the
    task's recorded base_commit.
    """
    init_repo(dest)
    copy_project_tree(project_dir, dest)
    clean = commit_all(dest, clean_commit_message(project_dir.name))
    for task in tasks:
        git(dest, "checkout", "-q", "--detach", clean)
        try:
            git(dest, "apply", "-R", "--whitespace=nowarn", "-", stdin=task.patch)
        except BundledSuiteError as exc:
            raise BundledSuiteError(f"{task.instance_id}: gold patch does not reverse onto the clean tree: {exc}") from None
        base = commit_all(dest, inject_commit_message(task.instance_id))
        if base != task.base_commit:
            raise BundledSuiteError(
                f"{task.instance_id}: rebuilt base commit {base} differs from the recorded base_commit "
                f"{task.base_commit}; the project or tasks.jsonl changed without running "
                "scripts/build_bundled_suite.py"
            )
        git(dest, "tag", task.instance_id, base)
    git(dest, "checkout", "-q", "main")


def load_bundled_tasks() -> list[Task]:
    """The bundled tasks, in file order."""
    lines = BUNDLED_TASKS_FILE.read_text(encoding="utf-8").splitlines()
    return [Task.model_validate_json(line) for line in lines if line.strip()]


def _content_hash() -> str:
    """Hash of everything the repos are built from, so a changed suite gets a fresh cache folder."""
    digest = hashlib.sha256(f"layout {_LAYOUT_VERSION}\n".encode())
    for rel in _project_files(PROJECTS_DIR):
        digest.update(f"{rel.as_posix()}\0".encode())
        digest.update((PROJECTS_DIR / rel).read_bytes())
        digest.update(b"\0")
    digest.update(BUNDLED_TASKS_FILE.read_bytes())
    return digest.hexdigest()


def bundled_repos_dir(cache_dir: Path | None = None) -> Path:
    """A repos folder holding one git repo per bundled project, built once and reused.

    Built in a temporary folder beside the final one and renamed into place,
    so concurrent callers never see a half-built folder; a caller that loses
    the race drops its copy and uses the winner's.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()

    def build(folder: Path) -> None:
        by_repo: dict[str, list[Task]] = defaultdict(list)
        for task in load_bundled_tasks():
            by_repo[task.repo].append(task)
        for repo, tasks in by_repo.items():
            owner, name = repo.split("/", 1)
            if owner != REPO_OWNER or not (PROJECTS_DIR / name).is_dir():
                raise BundledSuiteError(f"{tasks[0].instance_id}: repo {repo!r} is not a bundled project")
            build_repo(PROJECTS_DIR / name, tasks, folder / tasks[0].repo_dirname)

    return build_once(root / f"bundled-repos-{_content_hash()[:16]}", build)
