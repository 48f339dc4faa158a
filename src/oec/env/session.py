"""One rollout's environment: a workspace at the task's base commit plus a sandbox over it.

`open_session` is the one switch between backends: the local one here, and the
docker one (`oec.env.docker_backend`, SWE-bench/SWE-smith images) with the same
surface (run, diff, checkpoint, close, path, editor_command_prefix).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

from oec.agent.tools import EDITOR_SCRIPT
from oec.env.repos import RepoIndex
from oec.env.sandbox import CommandResult, Limits, Sandbox
from oec.env.workspace import Workspace
from oec.tasks.model import Task

if TYPE_CHECKING:
    from oec.env.docker_backend import DockerConfig, DockerSession

Isolation = Literal["auto", "bwrap", "none"]
#: "local", "docker" (DockerConfig's defaults), or a DockerConfig
EnvBackend = Union[Literal["local", "docker"], "DockerConfig"]
ENV_BACKENDS = ("local", "docker")
#: the str_replace_editor script (a standalone file of oec.agent, run inside the sandbox)
_EDITOR_SCRIPT = Path(__file__).resolve().parents[1] / "agent" / "editor_script.py"


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
        # without a python_env of its own, the task's code and tests run under oec's interpreter, whose
        # site-packages hold the pytest plugins of oec's dependencies (anyio, pytest-timeout), not the task's:
        # pytest must not load them (scanning for them is also half its start-up, ~0.17 CPU s a run)
        env = None if task.python_env else {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        # the workspace borrows the repo's git objects, and the editor tool runs oec's own script: both must stay
        # readable when they live under /tmp (a clone in /tmp, CI), which the sandbox's private /tmp would hide
        sandbox = Sandbox(workspace.path, limits=limits or Limits(), env=env, path_prepend=path_prepend,
                          isolation=isolation, read_only=[repo, EDITOR_SCRIPT.parent])
        return cls(task, workspace, sandbox)

    @property
    def path(self) -> Path:
        return self.workspace.path

    @property
    def editor_command_prefix(self) -> str:
        """How `oec.agent.tools` runs the str_replace_editor script here: the host's copy, sandbox's python."""
        return f"python {shlex.quote(str(_EDITOR_SCRIPT))}"

    def checkpoint(self, message: str) -> None:
        """Commit the tree so that a failed patch attempt resets to here (grading)."""
        self.workspace.checkpoint(message)

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


def open_session(
    task: Task,
    repos: RepoIndex,
    *,
    backend: EnvBackend = "local",
    limits: Limits | None = None,
    isolation: Isolation = "auto",
    work_root: Path | None = None,
    label: str | None = None,
) -> EnvSession | DockerSession:
    """Open the task's environment with the chosen backend (docker ignores repos, isolation, work_root)."""
    if backend == "local":
        return EnvSession.open(task, repos, limits=limits, isolation=isolation, work_root=work_root, label=label)
    from oec.env.docker_backend import DockerConfig, DockerSession

    if backend == "docker":
        backend = DockerConfig()
    if not isinstance(backend, DockerConfig):
        raise ValueError(f"env backend must be one of {', '.join(ENV_BACKENDS)} or a DockerConfig, not {backend!r}")
    return DockerSession.open(task, limits=limits, config=backend, label=label)
