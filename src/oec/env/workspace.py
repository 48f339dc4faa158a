"""A throwaway checkout of a repository at one commit, and its diff against that commit.

Made with `git clone --shared` (objects borrowed from the source repo, nothing
copied but the working files), so creating one costs about as much as
writing the files out, and many rollouts can check out the same repo at once.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from oec.env.git import git

DEFAULT_WORK_ROOT_ENV = "OEC_WORK_DIR"
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


def default_work_root() -> Path:
    """Where workspaces live unless told otherwise: $OEC_WORK_DIR or <tmp>/oec-workspaces."""
    root = Path(os.environ.get(DEFAULT_WORK_ROOT_ENV) or Path(tempfile.gettempdir()) / "oec-workspaces")
    root.mkdir(parents=True, exist_ok=True)
    return root


class Workspace:
    """A git checkout at `base_commit` in a private folder; `diff()` is the rollout's patch."""

    def __init__(self, path: Path, base_commit: str) -> None:
        self.path = path
        self.base_commit = base_commit

    @classmethod
    def create(cls, repo: Path, commit: str, *, root: Path | None = None, label: str = "ws") -> "Workspace":
        root = root or default_work_root()
        root.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
        path = Path(tempfile.mkdtemp(prefix=f"{slug}-{os.getpid()}-", dir=root))
        try:  # two git processes: a rollout makes one workspace, its grading another
            git(["clone", "--shared", "--no-checkout", "--quiet", "-c", "user.name=oec",
                 "-c", "user.email=oec@localhost", str(repo), str(path)])
            git(["checkout", "--quiet", "--detach", commit], cwd=path)
            head = commit if _FULL_SHA.fullmatch(commit) else git(["rev-parse", "HEAD"], cwd=path).strip()
        except Exception:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path, head)

    def diff(self) -> str:
        """Everything changed since base_commit (new files included, ignored files not)."""
        git(["add", "-A"], cwd=self.path)
        return git(["diff", "--cached", "--binary", "--no-color", "--no-ext-diff", self.base_commit], cwd=self.path)

    def checkpoint(self, message: str) -> None:
        """Commit the current tree so a later `reset` comes back here (diff() still compares to base)."""
        git(["add", "-A"], cwd=self.path)
        git(["commit", "--quiet", "--allow-empty", "--no-verify", "-m", message], cwd=self.path)

    def reset(self) -> None:
        """Back to the last checkpoint (base_commit if none): used between patch application attempts."""
        git(["reset", "--quiet", "--hard", "HEAD"], cwd=self.path)
        git(["clean", "-fdq"], cwd=self.path)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
