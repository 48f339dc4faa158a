"""One rollout's environment: a workspace at the task's base commit plus a sandbox over it.

`open_session` is the one switch between backends: the local one here, and the
docker one (`oec.env.docker_backend`, SWE-bench/SWE-smith images) with the same
surface (run, run_stateful, diff, checkpoint, close, path, editor_command_prefix).
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

from oec.agent.tools import EDITOR_SCRIPT
from oec.env.bash_state import STATE_FILE_NAME, stateful_script
from oec.env.git_scripts import CheckpointSteps, diff_script
from oec.env.repos import RepoIndex
from oec.env.sandbox import (
    CommandResult,
    SandboxLimits,
    PatchUnavailable,
    Sandbox,
    SandboxError,
)
from oec.env.workspace import Workspace
from oec.grading.report_plugin import PYTEST_REPORT_PLUGIN
from oec.tasks.model import Task

if TYPE_CHECKING:
    from oec.env.docker_backend import DockerConfig, DockerSession

Isolation = Literal["auto", "bwrap", "none"]
#: what a session is opened for: the agent's rollout, or grading a patch
Purpose = Literal["agent", "grading"]
#: "local", "docker" (DockerConfig's defaults), or a DockerConfig
EnvBackend = Union[Literal["local", "docker"], "DockerConfig"]
ENV_BACKENDS = ("local", "docker")
#: the str_replace_editor script (a standalone file of oec.agent, run inside the sandbox)
_EDITOR_SCRIPT = EDITOR_SCRIPT.resolve()
#: oec's files that sandboxed commands run, each shown alone (never the folders around them)
TOOL_FILES = (_EDITOR_SCRIPT, PYTEST_REPORT_PLUGIN)
#: oec's own git in a workspace (a diff, a commit) gets this long; a model's repository may slow it down
TRUSTED_TIMEOUT_S = 600.0


class EnvSession(CheckpointSteps):
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
        limits: SandboxLimits | None = None,
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
        # visible besides the system and the interpreter: the base commit's own objects (never the source
        # repo, whose history and working tree hold the fix) and oec's tool scripts, file by file
        visible = [p for p in (workspace.store, *TOOL_FILES) if p is not None]
        try:
            sandbox = Sandbox(workspace.path, limits=limits or SandboxLimits(), env=env, path_prepend=path_prepend,
                              isolation=isolation, read_only=visible)
        except BaseException:
            workspace.close()
            raise
        return cls(task, workspace, sandbox)

    @property
    def path(self) -> Path:
        return self.workspace.path

    @property
    def pytest_plugin_dir(self) -> str:
        """The folder of oec's pytest report plugin as commands see it (the plugin file alone is shown)."""
        return str(PYTEST_REPORT_PLUGIN.parent)

    @property
    def editor_command_prefix(self) -> str:
        """How `oec.agent.tools` runs the str_replace_editor script here: the host's copy, sandbox's python."""
        return f"python {shlex.quote(str(_EDITOR_SCRIPT))}"

    def run(self, command: str, *, timeout_s: float | None = None, output_bytes: int | None = None) -> CommandResult:
        return self.sandbox.run(command, timeout_s=timeout_s, output_bytes=output_bytes)

    def run_stateful(self, command: str, *, timeout_s: float | None = None,
                     output_bytes: int | None = None) -> CommandResult:
        """The agent's bash: like `run`, but the working directory, exported variables, functions and aliases
        of the previous `run_stateful` carry over (`oec.env.bash_state`); `run` itself never sees them."""
        script = stateful_script(command, f"{self.sandbox.scratch_inside}/{STATE_FILE_NAME}")
        result = self.sandbox.run(script, timeout_s=timeout_s, output_bytes=output_bytes)
        return dataclasses.replace(result, command=command)

    def diff(self) -> str:
        """Everything changed since base_commit: the rollout's patch, read by git INSIDE the sandbox."""
        try:
            code, out, err = self.exec_trusted(diff_script(self.workspace.base_commit))
        except SandboxError as exc:  # larger than any patch oec accepts, or a repository that stalls git
            raise PatchUnavailable(f"the workspace's diff could not be read: {exc}") from exc
        if code != 0:
            raise PatchUnavailable(f"the workspace's git cannot diff (exit {code}): {err.strip()[-500:]}")
        return out

    def exec_trusted(self, script: str) -> tuple[int, str, str]:
        """Run oec's own shell in the sandbox: (exit code, stdout whole, stderr)."""
        return self.sandbox.run_trusted(script, timeout_s=TRUSTED_TIMEOUT_S)

    def stage_file(self, name: str, data: bytes) -> str:
        """A file for oec's own commands (a patch to apply), where only they look; returns its path inside."""
        return self.sandbox.write_scratch(name, data)

    def read_staged(self, name: str, *, limit: int) -> bytes:
        """A file a command left where `stage_file` puts them (a test report), at most `limit` bytes."""
        return self.sandbox.read_scratch(name, limit=limit)

    def _check(self, script: str, what: str) -> None:
        code, out, err = self.exec_trusted(script)
        if code != 0:
            raise SandboxError(f"{what} failed in the workspace: {(err or out).strip()[-500:]}")

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
    limits: SandboxLimits | None = None,
    isolation: Isolation = "auto",
    work_root: Path | None = None,
    label: str | None = None,
    purpose: Purpose = "agent",
) -> EnvSession | DockerSession:
    """Open the task's environment with the chosen backend (docker ignores repos, isolation, work_root).

    `purpose` matters for SWE-smith rows only: the agent starts without the files of the FAIL_TO_PASS
    tests, grading with them."""
    if backend == "local":
        return EnvSession.open(task, repos, limits=limits, isolation=isolation, work_root=work_root, label=label)
    from oec.env.docker_backend import DockerConfig, DockerSession

    if backend == "docker":
        backend = DockerConfig()
    if not isinstance(backend, DockerConfig):
        raise ValueError(f"env backend must be one of {', '.join(ENV_BACKENDS)} or a DockerConfig, not {backend!r}")
    return DockerSession.open(task, limits=limits, config=backend, label=label, purpose=purpose)
