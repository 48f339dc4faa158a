"""Workspaces: a checkout at the task's commit, whatever form the commit is given in, with nothing else of git."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CLEAN, SweRepo, _git

from oec.env.base_store import base_store
from oec.env.git import GitError
from oec.env.repos import RepoIndex
from oec.env.session import open_session
from oec.env.workspace import Workspace


def test_full_and_short_commits_check_out_the_same_base(swe_repo: SweRepo, tmp_path: Path) -> None:
    repo = swe_repo.repos_dir / "acme__calc"
    base = swe_repo.task.base_commit
    for given in (base, base[:10], "main"):
        with Workspace.create(repo, given, root=tmp_path / "ws") as ws:
            assert ws.base_commit == base
            assert _git(ws.path, "rev-parse", "HEAD").strip() == base
            assert "return a - b" in (ws.path / "calc/__init__.py").read_text()


def test_the_workspace_holds_the_base_commit_alone(swe_repo: SweRepo, tmp_path: Path) -> None:
    """History, refs and the source repo's objects stay out: the fixed file's content is nowhere to be read."""
    repo = swe_repo.repos_dir / "acme__calc"
    (repo / "calc/__init__.py").write_text(CLEAN["calc/__init__.py"])  # the fix, committed on top as SWE-smith does
    _git(repo, "commit", "-qam", "fixed")
    _git(repo, "tag", "v-fixed")
    fixed_blob = _git(repo, "rev-parse", "HEAD:calc/__init__.py").strip()
    with Workspace.create(repo, swe_repo.task.base_commit, root=tmp_path / "ws") as ws:
        assert _git(ws.path, "log", "--all", "--format=%H").split() == [swe_repo.task.base_commit]
        assert _git(ws.path, "for-each-ref").strip() == ""  # no branch, no tag, no stash
        objects = _git(ws.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
        assert fixed_blob not in objects and len(objects) == 7  # commit, 3 trees, 3 blobs
        assert (ws.path / ".git/objects/info/alternates").read_text().strip() == str(ws.store / "objects")
        assert ws.store == base_store(repo, swe_repo.task.base_commit)  # built once, shared


def test_checkpoint_reset_and_diff_run_inside_the_sandbox(swe_repo: SweRepo) -> None:
    """Grading commits the candidate patch before the test patch; the source repo's config is not needed."""
    with open_session(swe_repo.task, RepoIndex([swe_repo.repos_dir])) as session:
        (session.path / "note.txt").write_text("hello\n")
        session.checkpoint("oec: candidate patch")
        assert _git(session.path, "log", "-1", "--format=%an <%ae>").strip() == "oec <oec@localhost>"
        (session.path / "calc/__init__.py").write_text("broken\n")
        session.reset()
        assert (session.path / "note.txt").exists() and "return a - b" in (session.path / "calc/__init__.py").read_text()
        assert "+hello" in session.diff()
        path = session.path
    assert not path.exists()


def test_a_bare_source_repo_and_an_unknown_commit(swe_repo: SweRepo, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    _git(tmp_path, "clone", "-q", "--bare", str(swe_repo.repos_dir / "acme__calc"), str(bare))
    with Workspace.create(bare, swe_repo.task.base_commit, root=tmp_path / "ws") as ws:
        assert "return a - b" in (ws.path / "calc/__init__.py").read_text()
        assert _git(ws.path, "log", "--format=%s").strip() == "buggy"
    with pytest.raises(GitError, match="'no-such-branch' is not a commit"):
        Workspace.create(bare, "no-such-branch", root=tmp_path / "ws")
    assert list((tmp_path / "ws").iterdir()) == []  # nothing left behind by the failure
