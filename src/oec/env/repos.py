"""Find a task's repository among repos folders (SWE-bench's `owner__name` clones).

The caller decides which folders to search (a user's `--repos DIR`, the
bundled suite's materialized folder, ...); nothing here knows any project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oec.env.git import has_commit
from oec.tasks.model import Task


class RepoNotFound(LookupError):
    """The task's repository (or its base commit) is in none of the searched folders."""


@dataclass
class RepoIndex:
    """Ordered list of repos folders; the first folder holding the task's repo wins."""

    dirs: list[Path] = field(default_factory=list)

    def candidates(self, task: Task) -> list[Path]:
        owner_name = task.repo.strip("/")
        names = [task.repo_dirname, owner_name.split("/")[-1]]
        return [d / n for d in self.dirs for n in names] + [d / owner_name for d in self.dirs]

    def locate(self, task: Task) -> Path:
        """Return the git repository for `task`, checking that it holds the base commit."""
        if task.base_commit is None:
            raise RepoNotFound(f"{task.instance_id}: a SWE-smith row (no base_commit; `patch` is the bug) is built "
                               "from its image's clean repository: run it with --env docker")
        found = [p for p in self.candidates(task) if (p / ".git").exists() or (p / "HEAD").is_file()]
        if not found:
            searched = ", ".join(str(d) for d in self.dirs) or "(no repos folder given)"
            raise RepoNotFound(
                f"{task.instance_id}: repository '{task.repo}' not found in {searched}; "
                f"clone it as <DIR>/{task.repo_dirname} and pass --repos DIR"
            )
        for repo in found:
            if has_commit(repo, task.base_commit):
                return repo
        raise RepoNotFound(
            f"{task.instance_id}: base_commit {task.base_commit} is not in {found[0]}; "
            f"fetch it (git -C {found[0]} fetch --all) or use a full clone"
        )
