"""One rollout's environment: a workspace at the task's base commit plus a sandbox over it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from oec.env.repos import RepoIndex
from oec.env.sandbox import CommandResult, Limits, Sandbox
from oec.env.workspace import Workspace
from oec.tasks.model import Task

Isolation = Literal["auto", "bwrap", "none"]


class EnvSession:
    """Start from the task's repo at base_commit, run commands, read the diff, close."""

    def __init__(self, task: Task, workspace: Workspace, sandbox: Sandbox) -> None:
        self.task = task
        self.workspace = workspace
        self.sandbox = sandbox

    @classmethod
    def open(
        cls,
        task: Task,
        repos: RepoIndex,
        *,
        limits: Limits | None = None,
        isolation: Isolation = "auto",
        work_root: Path | None = None,
        label: str | None = None,
    ) -> "EnvSession":
        repo = repos.locate(task)
        workspace = Workspace.create(repo, task.base_commit, root=work_root, label=label or task.instance_id)
        path_prepend = [Path(task.python_env)] if task.python_env else []
        sandbox = Sandbox(workspace.path, limits=limits or Limits(), path_prepend=path_prepend, isolation=isolation,
                          read_only=[repo])  # the workspace borrows the repo's git objects
        return cls(task, workspace, sandbox)

    @property
    def path(self) -> Path:
        return self.workspace.path

    def run(self, command: str, *, timeout_s: float | None = None, output_bytes: int | None = None) -> CommandResult:
        return self.sandbox.run(command, timeout_s=timeout_s, output_bytes=output_bytes)

    def diff(self) -> str:
        return self.workspace.diff()

    def close(self) -> None:
        self.sandbox.close()
        self.workspace.close()

    def __enter__(self) -> "EnvSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
