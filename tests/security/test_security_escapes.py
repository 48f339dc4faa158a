"""Escapes: nothing a model writes into its repository runs on the host, or reaches a repository of the host.

Each attack is a scripted student in `oec collect` (the real sandbox, the real diff) or a patch given to
`oec grade`; the marker file it tries to create lies on the host, where only host-side code could write it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from attacks import (
    EDIT,
    GIT_PROGRAMS,
    GIT_WRITING_PATCHES,
    attack,
    grade_patch,
    new_file_patch,
)

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")


@pytest.mark.parametrize("kind", list(GIT_PROGRAMS))
def test_repository_config_never_runs_on_the_host(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / f"pwned-{kind.replace(' ', '-')}"
    record = attack(tmp_path, [GIT_PROGRAMS[kind].format(marker=marker), EDIT])
    assert not marker.exists(), f"{kind}: the model's git config ran on the host"
    assert record["exit_reason"] == "submitted"
    # the patch is read by git inside the sandbox: the edit is there, or (a failing filter) no patch at all
    assert "max_length + 1" in record["patch"] or record["error"].startswith("no patch")


def _snapshot(repo: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(repo)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(repo.rglob("*")) if p.is_file()}


def test_a_gitdir_link_cannot_reach_a_host_repository(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_AUTHOR_NAME": "v", "GIT_AUTHOR_EMAIL": "v@v",
           "GIT_COMMITTER_NAME": "v", "GIT_COMMITTER_EMAIL": "v@v"}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "victim"]):
        subprocess.run(["git", *args], cwd=victim, env=env, check=True)
    before = _snapshot(victim / ".git")
    record = attack(tmp_path, [f"rm -rf .git && printf 'gitdir: {victim}/.git\\n' > .git", EDIT])
    assert _snapshot(victim / ".git") == before, "the host repository was written"
    assert record["patch"] == "" and record["error"].startswith("no patch")  # the link leads nowhere inside


@pytest.mark.parametrize("kind", list(GIT_WRITING_PATCHES))
def test_a_graded_patch_that_writes_into_git_is_refused(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-grade"
    result = grade_patch(tmp_path, GIT_WRITING_PATCHES[kind].replace("{marker}", str(marker)))
    assert result["status"] == "patch_refused" and "git internals" in result["reason"], result
    assert not marker.exists()


def test_paths_out_of_the_repository_are_refused(tmp_path: Path) -> None:
    for path in ("../outside.py", "textkit/../../outside.py"):
        result = grade_patch(tmp_path, new_file_patch(path, "x = 1"), name=f"out-{path.count('/')}.diff")
        assert result["status"] == "patch_refused" and "leaves the repository" in result["reason"], result


@pytest.mark.slow
def test_a_patch_too_large_to_read_is_the_models_loss_not_a_failed_run(tmp_path: Path) -> None:
    """A diff over oec's limit (64 MiB) is not read into memory whole: the rollout has no patch, and ran."""
    record = attack(tmp_path, ["head -c 52000000 /dev/zero | base64 -w 76 > big.txt && ls -la big.txt"])
    assert record["exit_reason"] == "submitted" and record["patch"] == ""
    assert record["error"].startswith("no patch") and "printed more than" in record["error"]
    assert record["reward"]["status"] == "unresolved"
