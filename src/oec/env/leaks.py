"""Can a task's fix be read back from git? The check behind `oec tasks validate --repos`.

The fixed content of every file the gold patch (and the test patch) changes
is hashed as git would store it, then looked for in two object stores:

- the task's source repository (everything in it, reachable or not): where a
  SWE-smith-style or bundled bug sits on top of the fixed commit, or a
  SWE-bench clone holds the fixing commit, the fix is one `git diff` away for
  any harness that hands the agent that repository;
- what a fresh oec workspace can read (its own objects and the base store it
  borrows): this must hold none of it, whatever the source repository holds.

The hashing applies the patches in a sandboxed workspace, as grading does.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from oec.env.git import git
from oec.env.git_scripts import GIT, GIT_ENV
from oec.env.repos import RepoIndex
from oec.env.session import EnvSession, Isolation
from oec.grading.apply import apply_patch
from oec.grading.patch_files import PatchParseError, canonical, parse_patch_files
from oec.tasks.model import Task

_ALL_OBJECTS = f"{GIT_ENV}\n{GIT} cat-file --batch-all-objects --batch-check='%(objectname)'"


@dataclass
class LeakReport:
    """Where the fixed content of a task's files can be read from (empty lists: nowhere)."""

    instance_id: str
    fixed: dict[str, str] = field(default_factory=dict)          # path -> blob id of its fixed content
    in_source: list[str] = field(default_factory=list)           # "path (commit, refs)" found in the source repo
    in_workspace: list[str] = field(default_factory=list)        # paths whose fixed content a workspace can read
    error: str | None = None


def _fixed_blobs(session: EnvSession, patch: str, label: str) -> dict[str, str]:
    """Apply `patch` in the session (reset after) and hash each file it leaves behind, as git stores it."""
    changes = parse_patch_files(patch)
    if any(".git" in p.lower().split("/") for c in changes for p in c.paths):
        raise PatchParseError(f"the {label} writes into .git")
    applied = apply_patch(session, canonical(changes))
    if not applied.ok:
        raise PatchParseError(f"the {label} does not apply to base_commit: {applied.log[-300:]}")
    paths = [c.new_path for c in changes if c.new_path]
    blobs: dict[str, str] = {}
    if paths:
        code, out, err = session.exec_trusted(f"{GIT_ENV}\n{GIT} hash-object -- " + " ".join(map(shlex.quote, paths)))
        if code != 0:
            raise PatchParseError(f"cannot hash the {label}'s files: {err.strip()[-300:]}")
        blobs = dict(zip(paths, out.split()))
    session.reset()
    return blobs


def _where(repo: Path, blob: str) -> str:
    commit = git(["log", "--all", "--format=%H %D", "-1", f"--find-object={blob}"], cwd=repo, check=False).strip()
    if not commit:
        return "an unreachable object"
    sha, _, refs = commit.partition(" ")
    return f"commit {sha[:12]}" + (f" ({refs})" if refs else "")


def check_leaks(task: Task, repos: RepoIndex, *, isolation: Isolation = "auto",
                work_root: Path | None = None) -> LeakReport:
    """Look for the task's fixed file contents in its source repository and in a fresh workspace."""
    report = LeakReport(task.instance_id)
    try:
        repo = repos.locate(task)
        with EnvSession.open(task, repos, isolation=isolation, work_root=work_root,
                             label=f"leaks-{task.instance_id}") as session:
            code, out, err = session.exec_trusted(_ALL_OBJECTS)
            if code != 0:
                raise RuntimeError(f"cannot list the workspace's objects: {err.strip()[-300:]}")
            readable = set(out.split())
            for patch, label in ((task.fix_patch, "gold patch"), (task.test_patch, "test patch")):
                if patch.strip():
                    report.fixed.update(_fixed_blobs(session, patch, label))
        in_source = set(git(["cat-file", "--batch-all-objects", "--batch-check=%(objectname)"], cwd=repo).split())
        for path, blob in report.fixed.items():
            if blob in readable:
                report.in_workspace.append(path)
            if blob in in_source:
                report.in_source.append(f"{path} ({_where(repo, blob)})")
    except Exception as exc:  # a task whose repo or patches are broken: say so, go on with the next
        report.error = f"{type(exc).__name__}: {exc}"
    return report
