"""git on the host: only ever on repositories that no model has touched.

Two kinds of git run in oec. This module is the host's: it reads the task's
source repository and builds fresh workspaces, before any model acts in
them. Every git that touches a workspace after a model has acted there (the
rollout's diff, grading's commits) runs inside that workspace's sandbox
(`oec.env.git_scripts`), because a repository a model could write is a
program: `core.fsmonitor`, hooks, filter drivers, `include.path` and a `.git`
file pointing elsewhere all make git run or write what the repository says.

Even here, on trusted repositories, git gets a scrubbed environment (no API
key reaches it, no user or system config is read) and the settings that run
programs are switched off.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from oec.env.host_env import scrubbed_env

#: settings that make git run a program or consult the repository's own hooks; forced off on every call
HARDENING = (
    "-c", "safe.directory=*",
    "-c", "core.autocrlf=false",
    "-c", f"core.hooksPath={os.devnull}",
    "-c", "core.fsmonitor=false",
    "-c", "core.untrackedCache=false",
    "-c", "protocol.allow=never",
    "-c", "diff.external=",
    "-c", "submodule.recurse=false",
)


class GitError(RuntimeError):
    """A git command failed; the message carries the command and git's own words."""


def git(args: list[str], cwd: Path | None = None, *, check: bool = True, input: str | None = None) -> str:
    """Run `git ARGS` on a trusted repository and return stdout."""
    proc = subprocess.run(["git", *HARDENING, *args], cwd=cwd, input=input, capture_output=True, text=True,
                          env=scrubbed_env(), errors="replace")
    if check and proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def git_bytes(args: list[str], cwd: Path | None = None, *, input: bytes | None = None) -> bytes:
    """`git ARGS` with binary stdin/stdout (object listings piped into pack-objects, say)."""
    proc = subprocess.run(["git", *HARDENING, *args], cwd=cwd, input=input, capture_output=True,
                          env=scrubbed_env())
    if proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed in {cwd}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def has_commit(repo: Path, commit: str) -> bool:
    proc = subprocess.run(["git", *HARDENING, "cat-file", "-e", f"{commit}^{{commit}}"],
                          cwd=repo, capture_output=True, env=scrubbed_env())
    return proc.returncode == 0
