"""The agent's bash keeps its working directory, exports, functions and aliases between calls.

Three layers: the shell text alone (run with this machine's bash, no sandbox),
a real local session (bubblewrap where it works), and a real docker container.
Each time, oec's own commands (diff, checkpoint, the tests grading runs, `run`)
must not see the model's state, and a damaged state must be reported, never crash.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker_images
import pytest
from conftest import SweRepo

from oec.agent.actions import Action
from oec.agent.tools import execute
from oec.env.bash_state import STATE_FILE_NAME, stateful_script
from oec.env.repos import RepoIndex
from oec.env.sandbox import SandboxLimits
from oec.env.session import EnvSession, open_session
from oec.grading.grader import run_tests
from oec.tasks.model import Task

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")

#: what a hostile model leaves in its shell: git pointed elsewhere, no PATH, a `git` that lies
HOSTILE = ("export GIT_DIR=/nonexistent GIT_WORK_TREE=/ PATH=/nonexistent PYTHONPATH=/nonexistent; "
           "git() { echo 'diff --git a/fake b/fake'; }; export -f git; alias python=false")


def bash(action_command: str, env) -> str:
    """One bash tool call, as the agent makes it; its observation."""
    return execute(Action(tool="bash", arguments={"command": action_command}), env).text


# -- the shell text alone ------------------------------------------------------------------------------


class Shell:
    """Runs `stateful_script` with this machine's bash in a folder, as a sandbox would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root.parent / f"state-{uuid.uuid4().hex[:6]}"

    def __call__(self, command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", stateful_script(command, str(self.state))], cwd=self.root,
                              capture_output=True, text=True, timeout=30, check=False,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(self.root), **(env or {})})


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    return Shell(root)


def test_directory_exports_functions_aliases_and_unsets_persist(shell: Shell) -> None:
    first = shell('cd sub && export A="two words" B=$\'multi\\nline\' && unset HOME && f() { echo "f $1"; } '
                  '&& alias ll="echo listed"')
    assert first.returncode == 0 and first.stdout == first.stderr == ""
    second = shell('pwd; echo "$A"; echo "$B"; echo "${HOME-no home}"; f x; ll')
    assert second.stdout.splitlines() == [str(shell.root / "sub"), "two words", "multi", "line", "no home",
                                          "f x", "listed"], second.stderr


def test_exit_codes_line_numbers_and_exit_are_the_commands_own(shell: Shell) -> None:
    assert shell("exit 3").returncode == 3
    assert shell("false").returncode == 1
    broken = shell("echo first\nif then")
    assert broken.returncode == 2 and broken.stdout == "first\n"
    assert "line 3:" in broken.stderr  # one line below the model's own (the restore is one line)
    shell("cd sub; export KEPT=1; exit 5")  # `exit` still saves the state
    assert shell("pwd; echo $KEPT").stdout.split() == [str(shell.root / "sub"), "1"]


def test_the_commands_shell_options_and_aliases_do_not_break_the_save(shell: Shell) -> None:
    out = shell("set -euxo pipefail; IFS=,; alias printf=false declare=false; cd sub; export X=1")
    assert out.returncode == 0 and "oec" not in out.stderr and "__oec" not in out.stderr
    assert shell("pwd; echo $X").stdout.split() == [str(shell.root / "sub"), "1"]


def test_the_docker_marker_is_never_saved_nor_unset(shell: Shell) -> None:
    shell("export OTHER=1", env={"OEC_EXEC": "a" * 32})
    assert shell('echo "$OEC_EXEC"', env={"OEC_EXEC": "b" * 32}).stdout == "b" * 32 + "\n"
    assert "OEC_EXEC" not in shell.state.read_text()


def test_a_hand_made_garbage_state_is_reported_and_healed(shell: Shell) -> None:
    shell("cd sub; export A=1")
    damaged = shell(f"trap - EXIT; echo 'garbage (' > {shell.state}")
    assert damaged.returncode == 0
    report = shell("echo ran")
    assert report.stdout == "ran\n" and "[oec: the saved shell state" in report.stderr and "ignored" in report.stderr
    healed = shell("pwd")
    assert healed.stdout.strip() == str(shell.root) and healed.stderr == ""


def test_a_hand_edit_under_oecs_header_runs_as_the_models_own_shell_code(shell: Shell) -> None:
    shell("export A=1")
    header = shell.state.read_text().splitlines()[0]
    shell(f"trap - EXIT; printf '%s\\n' {header!r} 'echo from the state' 'if then' > {shell.state}")
    report = shell("echo ran")
    assert report.stdout == "from the state\nran\n" and "damaged" in report.stderr


def test_a_state_that_is_not_a_file_or_a_lost_directory_is_reported(shell: Shell) -> None:
    shell("cd sub")
    (shell.root / "sub").rmdir()
    gone = shell("pwd")
    assert gone.stdout.strip() == str(shell.root) and "saved working directory" in gone.stderr
    shell.state.unlink()
    shell.state.mkdir()
    odd = shell("echo ran")
    assert odd.stdout == "ran\n" and "not one oec wrote" in odd.stderr


# -- a real local session ------------------------------------------------------------------------------


@pytest.fixture
def session(swe_repo: SweRepo, tmp_path: Path) -> Iterator[EnvSession]:
    with open_session(swe_repo.task, RepoIndex([swe_repo.repos_dir]), work_root=tmp_path / "ws",
                      limits=SandboxLimits(timeout_s=30)) as env:
        yield env


def test_local_cd_and_export_persist_and_start_at_the_root(session: EnvSession) -> None:
    assert bash("pwd", session).strip() == str(session.path)
    bash("cd calc && export CALC_MODE=strict", session)
    assert bash('pwd; echo "$CALC_MODE"', session).split() == [str(session.path / "calc"), "strict"]
    assert session.run("pwd; echo ${CALC_MODE-unset}").output.split() == [str(session.path), "unset"]
    # the editor's relative paths stay relative to the repository root
    view = execute(Action(tool="str_replace_editor", arguments={"command": "view", "path": "calc/__init__.py"}),
                   session).text
    assert "return a - b" in view
    assert session.diff() == ""  # the state file is nowhere in the repository


def test_local_state_lives_in_the_sandboxs_private_tmp(session: EnvSession) -> None:
    bash("export SEEN=1", session)
    if session.sandbox.isolated:
        assert bash(f"test -f /tmp/{STATE_FILE_NAME} && echo there", session).strip() == "there"


def test_local_hostile_state_changes_neither_diff_nor_grading(session: EnvSession, swe_repo: SweRepo) -> None:
    bash("sed -i 's/return a - b/return a + b/' calc/__init__.py", session)
    bash(HOSTILE, session)
    assert "command not found" in bash("ls", session)  # the model did break its own shell
    patch = session.diff()
    assert patch == swe_repo.task.patch
    session.checkpoint("oec: candidate")
    tests = run_tests(session, swe_repo.task)
    assert tests.statuses.get("tests/test_calc.py::test_mul") == "PASSED", tests.run.output[-1000:]


def test_local_garbage_state_is_a_message_not_a_crash(session: EnvSession) -> None:
    bash("cd calc", session)
    bash(f"trap - EXIT; head -c 3000 /dev/urandom > {session.sandbox.scratch_inside}/{STATE_FILE_NAME}", session)
    observation = bash("echo still here", session)
    assert "still here" in observation and "[oec: the saved shell state" in observation
    assert bash("pwd", session).strip() == str(session.path)  # healed, from the repository root
    assert session.diff() == ""


def test_local_timeout_keeps_the_previous_state_and_the_session_usable(session: EnvSession) -> None:
    bash("cd calc && export STEP=1", session)
    started = time.monotonic()
    slow = session.run_stateful("cd .. && export STEP=2 && sleep 60", timeout_s=1)
    assert slow.timed_out and time.monotonic() - started < 20
    assert slow.command == "cd .. && export STEP=2 && sleep 60"  # the model's text, not the wrapper
    assert bash('pwd; echo "$STEP"', session).split() == [str(session.path / "calc"), "1"]


def test_a_new_session_starts_fresh(swe_repo: SweRepo, tmp_path: Path) -> None:
    repos = RepoIndex([swe_repo.repos_dir])
    with open_session(swe_repo.task, repos, work_root=tmp_path / "a") as first:
        bash("cd calc; export LEFT=1", first)
    with open_session(swe_repo.task, repos, work_root=tmp_path / "b", purpose="grading") as second:
        assert bash("pwd; echo ${LEFT-none}", second).split() == [str(second.path), "none"]


# -- a real docker container ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_task(engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Task]:
    yield from docker_images.calc_task_image(engine, tmp_path_factory.mktemp("bash-state-image"), "oec-test-bash-state")


def test_docker_state_persists_like_the_local_one(engine, docker_task: Task) -> None:
    from oec.env.docker_backend import DockerSession

    with DockerSession.open(docker_task, limits=SandboxLimits(timeout_s=30)) as session:
        assert bash("pwd", session).strip() == "/testbed"
        bash("cd calc && export CALC_MODE=strict && f() { echo fn; }", session)
        assert bash('pwd; echo "$CALC_MODE"; f', session).split() == ["/testbed/calc", "strict", "fn"]
        assert session.run("pwd; echo ${CALC_MODE-unset}").output.split() == ["/testbed", "unset"]
        slow = session.run_stateful("cd / && export CALC_MODE=lost && sleep 60", timeout_s=1)
        assert slow.timed_out
        assert bash('pwd; echo "$CALC_MODE"', session).split() == ["/testbed/calc", "strict"]
        bash("sed -i 's/return a - b/return a + b/' __init__.py", session)
        bash(HOSTILE, session)
        bash(f"trap - EXIT; echo 'garbage (' > /tmp/{STATE_FILE_NAME}", session)
        assert "[oec: the saved shell state" in bash("echo hi", session)
        assert session.diff() == docker_task.patch
        assert "OEC_EXEC" not in session.exec_trusted(f"cat /tmp/{STATE_FILE_NAME}")[1]
    with DockerSession.open(docker_task, purpose="grading") as fresh:
        assert bash("pwd; echo ${CALC_MODE-none}", fresh).split() == ["/testbed", "none"]
