"""Workspaces: a checkout at the task's commit, whatever form the commit is given in, that can commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from oec.env.git import GitError
from oec.env.workspace import Workspace
from conftest import SweRepo, _git


def test_full_and_short_commits_check_out_the_same_base(swe_repo: SweRepo, tmp_path: Path) -> None:
    repo = swe_repo.repos_dir / "acme__calc"
    base = swe_repo.task.base_commit
    for given in (base, base[:10], "main"):
        with Workspace.create(repo, given, root=tmp_path / "ws") as ws:
            assert ws.base_commit == base
            assert _git(ws.path, "rev-parse", "HEAD").strip() == base
            assert "return a - b" in (ws.path / "calc/__init__.py").read_text()


def test_checkpoint_commits_as_oec_and_diff_still_compares_to_base(swe_repo: SweRepo, tmp_path: Path) -> None:
    """Grading commits the candidate patch before the test patch; the source repo's config is not needed."""
    with Workspace.create(swe_repo.repos_dir / "acme__calc", swe_repo.task.base_commit, root=tmp_path) as ws:
        (ws.path / "note.txt").write_text("hello\n")
        ws.checkpoint("oec: candidate patch")
        assert _git(ws.path, "log", "-1", "--format=%an <%ae>").strip() == "oec <oec@localhost>"
        (ws.path / "calc/__init__.py").write_text("broken\n")
        ws.reset()
        assert (ws.path / "note.txt").exists() and "return a - b" in (ws.path / "calc/__init__.py").read_text()
        assert "+hello" in ws.diff()
    assert not ws.path.exists()


def test_a_bare_source_repo_and_an_unknown_commit(swe_repo: SweRepo, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    _git(tmp_path, "clone", "-q", "--bare", str(swe_repo.repos_dir / "acme__calc"), str(bare))
    with Workspace.create(bare, swe_repo.task.base_commit, root=tmp_path / "ws") as ws:
        assert "return a - b" in (ws.path / "calc/__init__.py").read_text()
        assert _git(ws.path, "log", "--format=%s").strip() == "buggy"  # history readable through the borrowed objects
    with pytest.raises(GitError, match="'no-such-branch' is not a commit"):
        Workspace.create(bare, "no-such-branch", root=tmp_path / "ws")
    assert list((tmp_path / "ws").iterdir()) == []  # nothing left behind by the failure
