"""Thin wrapper over the git command line, the one place oec shells out to git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """A git command failed; the message carries the command and git's own words."""


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    return env


def git(args: list[str], cwd: Path | None = None, *, check: bool = True, input: str | None = None) -> str:
    """Run `git ARGS` and return stdout; repos owned by other users are trusted (read-only use)."""
    cmd = ["git", "-c", "safe.directory=*", "-c", "core.autocrlf=false", *args]
    proc = subprocess.run(
        cmd, cwd=cwd, input=input, capture_output=True, text=True, env=_clean_env(), errors="replace"
    )
    if check and proc.returncode != 0:
        raise GitError(f"`{' '.join(cmd[5:])}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def has_commit(repo: Path, commit: str) -> bool:
    proc = subprocess.run(
        ["git", "-c", "safe.directory=*", "cat-file", "-e", f"{commit}^{{commit}}"],
        cwd=repo, capture_output=True, env=_clean_env(),
    )
    return proc.returncode == 0
