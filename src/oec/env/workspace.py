"""A throwaway checkout of a repository at one commit, with no way back to anything else.

Made without `git clone`'s transport: a fresh repository whose objects are
borrowed (an `alternates` entry) from the base commit's own store
(`oec.env.base_store`: that commit and its tree, nothing more), with the
commit marked shallow, then a checkout. Nothing is copied but the working
files, so a workspace costs about as much as writing them out, and many
rollouts can check out the same commit at once.

The host's git touches a workspace only here, while it is new. Once a model
has acted in it, every git on it runs inside its sandbox
(`oec.env.git_scripts`); the host only deletes it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from oec.env.base_store import base_store
from oec.env.git import GitError, git

DEFAULT_WORK_ROOT_ENV = "OEC_WORK_DIR"
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def default_work_root() -> Path:
    """Where workspaces live unless told otherwise: $OEC_WORK_DIR or <tmp>/oec-workspaces."""
    root = Path(os.environ.get(DEFAULT_WORK_ROOT_ENV) or Path(tempfile.gettempdir()) / "oec-workspaces")
    root.mkdir(parents=True, exist_ok=True)
    return root


def resolve_commit(repo: Path, commit: str) -> str:
    """The full hash of `commit` (a hash, a prefix, a branch or tag name) in `repo`.

    A full hash is taken as given (the repos index checked it is a commit of `repo`; a wrong one fails
    when its store is built): one git process less per workspace."""
    if _FULL_SHA.fullmatch(commit):
        return commit
    head = git(["rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], cwd=repo, check=False).strip()
    if not head:
        raise GitError(f"{commit!r} is not a commit of {repo}")
    return head


def remove_workspace(path: Path) -> None:
    """Delete a workspace with its `.git` last, so that one killed half-way still reads as a workspace.

    `oec.env.leftovers` recognizes a dead run's workspace by its `.git` (or by being empty): a plain
    rmtree that happened to delete `.git` first and was then killed left a folder no sweep would touch.
    """
    try:
        children = sorted(path.iterdir(), key=lambda child: child.name == ".git")
    except OSError:
        return
    for child in children:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


class Workspace:
    """A git checkout at `base_commit` in a private folder; `store` is the only object store it borrows."""

    def __init__(self, path: Path, base_commit: str, store: Path | None = None) -> None:
        self.path = path
        self.base_commit = base_commit
        self.store = store

    @classmethod
    def create(cls, repo: Path, commit: str, *, root: Path | None = None, label: str = "ws",
               cache_dir: Path | None = None) -> Workspace:
        root = root or default_work_root()
        root.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
        path = Path(tempfile.mkdtemp(prefix=f"{slug}-{os.getpid()}-", dir=root))
        try:
            head = resolve_commit(repo, commit)
            store = base_store(repo, head, cache_dir=cache_dir)
            git(["init", "--quiet", "--template=", str(path)])
            dot_git = path / ".git"
            (dot_git / "objects" / "info").mkdir(parents=True, exist_ok=True)
            (dot_git / "objects" / "info" / "alternates").write_text(f"{store / 'objects'}\n")
            (dot_git / "shallow").write_text(f"{head}\n")  # git treats base as a root: its parent is not here
            with open(dot_git / "config", "a", encoding="utf-8") as config:
                config.write("[user]\n\tname = oec\n\temail = oec@localhost\n")
            git(["checkout", "--quiet", "--detach", head], cwd=path)
        except Exception:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path, head, store)

    def close(self) -> None:
        remove_workspace(self.path)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
