"""What several subcommands share: the console, task loading with clear errors, the repos index."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import typer
from typer.models import ArgumentInfo, OptionInfo
from rich.console import Console
from rich.markup import escape

from oec.env.repos import RepoIndex
from oec.tasks.loaders import LoadResult, load_tasks

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print `message` as an error (literally: it may quote a server, a task row or a file) and return the exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_task_source(file: Path | None) -> LoadResult:
    """Tasks from FILE, or the bundled suite when no file is given; a missing file is a clear error."""
    if file is None:
        from oec.tasks.bundled import BUNDLED_TASKS_FILE

        file = BUNDLED_TASKS_FILE
    try:
        return load_tasks(file)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc


def report_errors(result: LoadResult) -> None:
    for error in result.errors:
        err_console.print(f"[red]bad task:[/] {escape(str(error))}", highlight=False, soft_wrap=True)


def repo_index(repos: Path | None) -> RepoIndex:
    """The user's repos folder first, then the bundled suite's (built on first use)."""
    from oec.tasks.bundled import bundled_repos_dir

    dirs: list[Path] = []
    if repos is not None:
        if not repos.is_dir():
            raise fail(f"--repos {repos}: not a directory")
        dirs.append(repos)
    dirs.append(bundled_repos_dir())
    return RepoIndex(dirs)


def choose_env_backend(env: str) -> str:
    """Check `--env`; for docker, fail now (before models load) if no engine answers, not per task later."""
    from oec.env.session import ENV_BACKENDS

    if env not in ENV_BACKENDS:
        raise fail(f"--env {env}: expected {' or '.join(ENV_BACKENDS)}")
    if env == "docker":
        from oec.env.docker_backend import DockerBackendError, connect

        try:
            connect().close()
        except DockerBackendError as exc:
            raise fail(str(exc)) from exc
    return env


def invoke(command: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a typer command from Python (as `oec run` chains them), unset parameters taking their CLI defaults.

    Calling the function bare would pass typer's OptionInfo objects for every
    parameter not given, so a newly added option would silently break callers.
    """
    for name, parameter in inspect.signature(command).parameters.items():
        if name in kwargs:
            continue
        default = parameter.default
        if isinstance(default, (OptionInfo, ArgumentInfo)):
            default = default.default
        if default is ... or default is inspect.Parameter.empty:
            raise TypeError(f"{command.__name__}: required parameter '{name}' not given")
        kwargs[name] = default
    return command(**kwargs)


def warn_about_interpreters(tasks: list, env: str) -> None:
    """Say so when a task of someone else's repository will run its tests under oec's own interpreter.

    Locally, a task without a `python_env` runs under the Python running oec, with oec's packages: right for
    the bundled suite, meaningless for a real repository's dependencies (SWE-bench, SWE-smith rows). Its
    image (--env docker) or a python_env (a venv's bin folder) is what it needs."""
    if env != "local":
        return
    bare = [t.instance_id for t in tasks if not t.python_env and not t.repo.startswith("oec-bundled/")]
    if bare:
        err_console.print(f"[yellow]{len(bare)} task(s) name no python_env (first: {escape(bare[0])}): locally their "
                          "tests run under oec's own interpreter and packages; use --env docker (their images) "
                          "or give each a python_env[/]", highlight=False, soft_wrap=True)
