"""The git oec runs where a model has acted: shell text run INSIDE the sandbox or container.

A workspace's `.git` is writable by the model, so its config is the model's:
`core.fsmonitor`, hooks, filter drivers, `include.path`, a `.git` file naming
another repository. Host-side git on such a repository runs the model's code
as the user running oec (with its API keys). So every git that reads a
workspace after a model acted there runs where the model's own commands run,
through these scripts; the host only creates and deletes workspaces.

Inside, the settings that change what oec reads are forced (`-c` beats the
repository's config) and the user/system configuration is not read; what the
repository can still do (a filter that sleeps, say) is bounded by the
sandbox's deadline and can at worst spoil its own patch, which the model
controls anyway. The local sandbox and the docker backend share this text.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["GIT", "GIT_ENV", "checkpoint_script", "diff_script", "reset_script", "validated_commit"]

_FORCED = " ".join([
    "-c safe.directory='*'",
    "-c core.autocrlf=false",
    "-c core.hooksPath=/dev/null",
    "-c core.fsmonitor=false",
    "-c core.untrackedCache=false",
    "-c core.quotePath=true",
    "-c diff.external=",
    "-c diff.noprefix=false",
    "-c diff.mnemonicPrefix=false",
    "-c diff.relative=false",
    "-c diff.renames=false",
    "-c color.ui=never",
    "-c submodule.recurse=false",
])
#: first in every script: no system/global config or attributes, no prompts, and `oec_git`, which is git with
#: the settings that decide what oec reads forced, whatever the repository's config says
GIT_ENV = ("export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_ATTR_NOSYSTEM=1 "
           "GIT_TERMINAL_PROMPT=0 GIT_OPTIONAL_LOCKS=0 LC_ALL=C\n"
           f'oec_git() {{ command git {_FORCED} "$@"; }}')
#: how scripts call git (defined by GIT_ENV)
GIT = "oec_git"
_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def validated_commit(commit: str) -> str:
    """A commit hash, checked before it goes into shell text."""
    if not _COMMIT.fullmatch(commit):
        raise ValueError(f"not a commit hash: {commit!r}")
    return commit


def diff_script(base_commit: str) -> str:
    """Print everything changed since base_commit, new files included (ignored files not): the rollout's patch."""
    return (f"{GIT_ENV}\n{GIT} add -A -- . && "
            f"{GIT} diff --cached --binary --no-color --no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/ "
            f"{validated_commit(base_commit)} --")


def checkpoint_script(message: str) -> str:
    """Commit the tree so that `reset_script` comes back here (grading: candidate patch, then test_patch)."""
    return (f"{GIT_ENV}\n{GIT} add -A -- . && {GIT} -c user.name=oec -c user.email=oec@localhost "
            f"-c commit.gpgsign=false commit --quiet --allow-empty --no-verify -m {shlex.quote(message)}")


def reset_script() -> str:
    """Back to the last checkpoint (between patch application attempts)."""
    return f"{GIT_ENV}\n{GIT} reset --quiet --hard HEAD && {GIT} clean -fdq"


class CheckpointSteps:
    """`checkpoint` and `reset` for a session that runs oec's own git with `_check(script, what)` (both
    backends do: in the sandbox, or in the container), so grading can try a patch and start over."""

    def _check(self, script: str, what: str) -> object:
        raise NotImplementedError

    def checkpoint(self, message: str) -> None:
        """Commit the tree so that `reset` comes back here (diff() still compares to base_commit)."""
        self._check(checkpoint_script(message), "git commit")

    def reset(self) -> None:
        """Back to the last checkpoint (base_commit if none)."""
        self._check(reset_script(), "git reset")
