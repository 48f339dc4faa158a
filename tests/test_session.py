"""A rollout's environment: which interpreter and pytest plugins the task's own tests get."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import SweRepo

from oec.env.repos import RepoIndex
from oec.env.session import open_session

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")


def _plugins_seen(swe_repo: SweRepo, tmp_path: Path, **task_fields: str) -> str:
    task = swe_repo.task.model_copy(update=task_fields)
    with open_session(task, RepoIndex([swe_repo.repos_dir]), work_root=tmp_path / "ws") as session:
        result = session.run("python -m pytest -VV")
    assert result.exit_code == 0, result.output
    return result.output


def test_tests_under_oecs_interpreter_do_not_load_oecs_plugins(swe_repo: SweRepo, tmp_path: Path) -> None:
    """oec's venv holds its dependencies' pytest plugins (anyio, pytest-timeout): not the task's."""
    pytest.importorskip("anyio")
    assert "anyio" not in _plugins_seen(swe_repo, tmp_path)


def test_a_task_python_env_keeps_its_plugins(swe_repo: SweRepo, tmp_path: Path) -> None:
    """A task that names its own environment gets every plugin installed there."""
    pytest.importorskip("anyio")
    assert "anyio" in _plugins_seen(swe_repo, tmp_path, python_env=str(Path(sys.executable).parent))
