"""The docker sandbox backend.

Without an engine: image naming, container settings, the in-container shell
(run here with the local bash: it is plain shell), the engine-unreachable
errors (a real `docker.from_env()`), and the session/grading code around the SDK
through `HostDocker`, a fake client whose "container" is a folder on this
machine and whose execs are local processes.

With a real engine (`make test` starts one; without, these fail and say why):
real containers end to end, from images built here (`docker_images`: a
debootstrapped Debian with python3, pytest and git, then a repository at /testbed).
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker_images
import pytest
from conftest import CLEAN, _git, make_calc_repo
from typer.testing import CliRunner

from oec.agent.actions import Action
from oec.agent.tools import EDITOR_SCRIPT, execute
from oec.cli import app
from oec.env import docker_backend as db
from oec.env.docker_backend import (
    DockerBackendError,
    DockerConfig,
    DockerImageMissing,
    DockerSession,
    DockerUnavailable,
    container_kwargs,
    image_for,
    swebench_image_name,
)
from oec.env.docker_shell import (
    checkout_script,
    diff_script,
    init_processes_script,
    reap_script,
    sweep_script,
    wrap_command,
)
from oec.env.repos import RepoIndex
from oec.env.sandbox import SandboxLimits, Sandbox
from oec.env.session import EnvSession, open_session
from oec.grading.grader import grade
from oec.tasks.model import Task

docker_sdk = pytest.importorskip("docker", reason="the docker SDK (oec[scale]) is not installed")
from docker.errors import ImageNotFound, NotFound

UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


def make_repo(repo: Path, image_name: str) -> Task:
    """conftest's acme/calc (`add` broken at base_commit), as a task whose image is `image_name`."""
    return Task.model_validate({**make_calc_repo(repo), "image_name": image_name})


# -- HostDocker: a fake client whose container is a folder and whose execs are local processes -------

@dataclass
class ExecResult:
    exit_code: int
    output: object


class HostStream:
    """What `api.exec_start(stream=True)` returns: chunks of merged output, and close()."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.closed = False

    def __iter__(self):
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while not self.closed:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.proc.stdout.close()  # type: ignore[union-attr]


def _image_env() -> dict[str, str]:
    """The "image's" environment: this interpreter (which has pytest) first on PATH, as python is in an image."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


class HostContainer:
    """The container: `root` stands for "/", so /testbed is root/testbed; absolute paths in commands are mapped."""

    def __init__(self, client: HostDocker, root: Path, kwargs: dict) -> None:
        self.client, self.root, self.kwargs = client, root, kwargs
        self.id = uuid.uuid4().hex
        self.name = kwargs.get("name", "fake")
        self.labels = kwargs.get("labels", {})
        self.archives: list[bytes] = []
        self.scripts: list[str] = []

    def host(self, text: str) -> str:
        for prefix in ("/testbed", "/opt/oec-tools", "/tmp/oec-stage", str(db.STATE_PATH)):
            text = text.replace(prefix, str(self.root) + prefix)
        return text

    def argv(self, cmd: list[str]) -> list[str]:
        return [self.host(part) for part in cmd]

    def put_archive(self, path: str, data: bytes) -> bool:
        self.archives.append((path, data))
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert all(m.isfile() for m in tar.getmembers())  # a folder entry would re-mode /tmp or /opt
            folder = self.root / path.lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            tar.extractall(folder, filter="data")
        return True

    def exec_run(self, cmd, stdout=True, stderr=True, workdir=None, demux=False, **_: object) -> ExecResult:
        self.scripts.append(cmd[-1])
        proc = subprocess.run(self.argv(cmd), cwd=self.host(workdir or "/testbed"), capture_output=True,
                              env=_image_env())
        output = (proc.stdout, proc.stderr) if demux else proc.stdout + proc.stderr
        return ExecResult(proc.returncode, output)

    def get_archive(self, path: str) -> tuple[list[bytes], dict]:
        import docker.errors

        target = Path(self.host(path))
        if not target.exists():
            raise docker.errors.NotFound(f"no such file: {path}")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(target, arcname=target.name)  # a folder with what it holds, as the engine's archive
        return [buffer.getvalue()], {"name": target.name}

    def remove(self, force: bool = False) -> None:
        self.client.removed.append(self.id)


class HostAPI:
    def __init__(self, client: HostDocker) -> None:
        self.client = client
        self.execs: dict[str, tuple[HostContainer, list[str], str]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def exec_create(self, container_id: str, cmd, workdir=None, **_: object) -> dict:
        exec_id = uuid.uuid4().hex
        self.execs[exec_id] = (self.client.by_id[container_id], cmd, workdir or "/testbed")
        return {"Id": exec_id}

    def exec_start(self, exec_id: str, stream: bool = False) -> HostStream:
        container, cmd, workdir = self.execs[exec_id]
        proc = subprocess.Popen(container.argv(cmd), cwd=container.host(workdir), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_image_env())
        self.procs[exec_id] = proc
        return HostStream(proc)

    def exec_inspect(self, exec_id: str) -> dict:
        proc = self.procs[exec_id]
        code = proc.poll()
        return {"Running": code is None, "ExitCode": code}

    def remove_container(self, container_id: str, force: bool = False) -> None:
        self.client.removed.append(container_id)


class HostImages:
    def __init__(self, client: HostDocker) -> None:
        self.client = client
        self.pulled: list[str] = []

    def get(self, name: str) -> object:
        if name not in self.client.images_to_repos:
            raise ImageNotFound(f"No such image: {name}")
        return object()

    def pull(self, name: str) -> object:
        self.pulled.append(name)
        raise docker_sdk.errors.APIError(f"pull access denied for {name}")


class HostContainers:
    def __init__(self, client: HostDocker) -> None:
        self.client = client

    def run(self, **kwargs: object) -> HostContainer:
        self.client.run_kwargs.append(kwargs)
        root = self.client.tmp / uuid.uuid4().hex[:8]
        shutil.copytree(self.client.images_to_repos[kwargs["image"]], root / "testbed", symlinks=True)
        (root / "tmp").mkdir()  # the container's /tmp: the agent's bash state lives there
        container = HostContainer(self.client, root, kwargs)
        self.client.by_id[container.id] = container
        return container

    def list(self, all: bool = False, filters: dict | None = None) -> list[HostContainer]:
        return list(self.client.listed)


class HostDocker:
    """Stands in for `docker.DockerClient`; `images_to_repos` maps an image name to the repo it holds."""

    def __init__(self, tmp: Path, images_to_repos: dict[str, Path]) -> None:
        self.tmp, self.images_to_repos = tmp, images_to_repos
        self.api, self.images, self.containers = HostAPI(self), HostImages(self), HostContainers(self)
        self.run_kwargs: list[dict] = []
        self.by_id: dict[str, HostContainer] = {}
        self.removed: list[str] = []
        self.listed: list[HostContainer] = []
        self.closed = False

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    @property
    def container(self) -> HostContainer:
        (only,) = self.by_id.values()
        return only


@pytest.fixture
def host_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[HostDocker, Task]:
    """A fake engine holding one image (the calc repo); every `connect()` returns it."""
    task = make_repo(tmp_path / "image-repo", "acme/calc-image:1")
    client = HostDocker(tmp_path / "containers", {"acme/calc-image:1": tmp_path / "image-repo"})
    monkeypatch.setattr(db, "connect", lambda: client)
    return client, task


# -- image naming -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("instance_id", "image"), [
    ("django__django-11099", "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"),
    ("sympy__sympy-20590", "swebench/sweb.eval.x86_64.sympy_1776_sympy-20590:latest"),
    ("psf__requests-2317", "swebench/sweb.eval.x86_64.psf_1776_requests-2317:latest"),
    ("Instagram__MonkeyType-123", "swebench/sweb.eval.x86_64.instagram_1776_monkeytype-123:latest"),
])
def test_swebench_image_naming(instance_id: str, image: str) -> None:
    assert swebench_image_name(instance_id) == image
    task = Task(instance_id=instance_id, repo="o/r", base_commit="abcd", problem_statement="x")
    assert image_for(task) == image


def test_image_naming_is_configurable() -> None:
    task = Task(instance_id="django__django-11099", repo="django/django", base_commit="abcd", problem_statement="x")
    assert image_for(task, DockerConfig(namespace="", arch="arm64")) == "sweb.eval.arm64.django_1776_django-11099:latest"
    assert image_for(task, DockerConfig(namespace="ghcr.io/me", tag="v2")) == \
        "ghcr.io/me/sweb.eval.x86_64.django_1776_django-11099:v2"


def test_a_rows_image_name_wins_as_swe_smith_rows_carry_one() -> None:
    row = {"instance_id": "oauthlib__oauthlib.1fd52536.combine_file__09vlzwgc",
           "repo": "swesmith/oauthlib__oauthlib.1fd52536", "base_commit": "1fd52536",
           "problem_statement": "x", "image_name": "jyangballin/swesmith.x86_64.oauthlib_1776_oauthlib.1fd52536",
           "FAIL_TO_PASS": '["tests/test_x.py::test_a"]', "PASS_TO_PASS": "[]"}
    task = Task.model_validate(row)
    assert image_for(task) == "jyangballin/swesmith.x86_64.oauthlib_1776_oauthlib.1fd52536"
    assert image_for(task, DockerConfig(namespace="other")) == row["image_name"]


# -- container settings ------------------------------------------------------------------------------

def test_container_kwargs_carry_the_local_sandboxs_limits() -> None:
    kwargs = container_kwargs("img:1", SandboxLimits(memory_mb=512, max_processes=64), DockerConfig(cpus=1.5),
                              name="oec-x-1234", instance_id="a__b-1")
    assert kwargs["image"] == "img:1" and kwargs["detach"] is True
    assert kwargs["network_mode"] == "none"
    assert kwargs["mem_limit"] == "512m" and kwargs["memswap_limit"] == "512m"
    assert kwargs["pids_limit"] == 64
    assert kwargs["init"] is True  # orphans are reaped, so zombies do not eat pids_limit
    assert kwargs["entrypoint"] == ["sleep"] and kwargs["command"] == ["infinity"]
    assert kwargs["working_dir"] == "/testbed"
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["labels"][db.LABEL] == "1" and kwargs["labels"]["oec.pid"] == str(os.getpid())
    assert "nano_cpus" not in container_kwargs("img:1", SandboxLimits(), DockerConfig(), name="n", instance_id="i")


# -- the in-container shell, run with the local bash ---------------------------------------------------

def _marker_alive(marker: str) -> bool:
    out = subprocess.run(["bash", "-c", f"grep -l {marker} /proc/[0-9]*/environ 2>/dev/null"],
                         capture_output=True, text=True).stdout
    return bool(out.strip())


def test_wrapped_command_keeps_its_exit_code_and_output_and_leaves_no_process() -> None:
    marker = uuid.uuid4().hex
    argv = wrap_command("echo out; echo err >&2; sleep 300 & setsid sleep 301 & exit 3", timeout_s=30, marker=marker)
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout == "out\n" and proc.stderr == "err\n"  # no shell noise of the wrapper's own
    assert time.monotonic() - started < 20  # the background sleeps did not hold the output open
    assert not _marker_alive(marker)


def test_wrapped_command_is_killed_at_its_deadline_with_its_process_group() -> None:
    marker = uuid.uuid4().hex
    started = time.monotonic()
    proc = subprocess.run(wrap_command("echo begun; sleep 30", timeout_s=0.5, marker=marker),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 137 and proc.stdout == "begun\n" and proc.stderr == ""
    assert time.monotonic() - started < 10
    assert not _marker_alive(marker)


def test_wrapped_command_runs_the_setup_in_its_own_shell_and_signals_show_as_128_plus_n() -> None:
    marker = uuid.uuid4().hex
    proc = subprocess.run(wrap_command('echo "$OEC_T" "$0"', timeout_s=10, marker=marker, setup="export OEC_T=set"),
                          capture_output=True, text=True)
    assert proc.stdout == "set bash\n"
    segv = subprocess.run(wrap_command("kill -SEGV $$", timeout_s=10, marker=marker), capture_output=True)
    assert segv.returncode == 139


def test_markers_are_checked_before_they_reach_shell_text() -> None:
    with pytest.raises(ValueError):
        reap_script("x; rm -rf /")
    with pytest.raises(ValueError):
        wrap_command("true", timeout_s=1, marker="abc")


def test_the_sweep_kills_nothing_outside_its_container() -> None:
    """The sweep's text names the container's hostname: run anywhere else (the fake engine runs it on this
    machine) it ends at once, and the init probe prints nothing, so no sweep is ever built there."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        swept = subprocess.run(["bash", "-c", f"( {sweep_script([], 'not-this-host')} )"], capture_output=True)
        probe = subprocess.run(["bash", "-c", init_processes_script("not-this-host")], capture_output=True, text=True)
        assert swept.returncode == 1 and victim.poll() is None
        assert probe.returncode == 0 and probe.stdout == ""
    finally:
        victim.kill()
    with pytest.raises(ValueError):
        sweep_script([7], "x; kill -9 -1")


def test_checkout_and_diff_scripts_match_the_local_workspace(tmp_path: Path) -> None:
    task = make_repo(tmp_path / "acme__calc", "img")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(tmp_path / "acme__calc"), str(clone))
    (clone / "calc/__init__.py").write_text("dirty\n")
    (clone / "junk.txt").write_text("untracked\n")
    (clone / "build.log").write_text("ignored, part of the environment\n")
    (clone / ".git/info/exclude").write_text("build.log\n")
    out = subprocess.run(["bash", "-c", checkout_script(task.base_commit)], cwd=clone, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == task.base_commit, out.stderr
    assert not (clone / "junk.txt").exists() and "return a - b" in (clone / "calc/__init__.py").read_text()
    assert (clone / "build.log").exists()
    script = checkout_script(task.base_commit)
    assert "checkout --quiet --force --detach" in script and "clean -fdq" in script and "-fdqx" not in script

    with open_session(task, RepoIndex([tmp_path])) as session:
        for tree in (clone, session.path):
            (tree / "calc/__init__.py").write_text(CLEAN["calc/__init__.py"])
            (tree / "new.bin").write_bytes(b"\x00\x01binary")
        expected = session.diff()
    script = diff_script(task.base_commit)
    assert "add -A" in script and "diff --cached --binary --no-color --no-ext-diff" in script
    got = subprocess.run(["bash", "-c", script], cwd=clone, capture_output=True, text=True)
    assert got.returncode == 0 and got.stdout == expected and "GIT binary patch" in expected


def test_the_containers_history_is_cut_to_the_base_commit(tmp_path: Path) -> None:
    """SWE-bench images clone whole repositories: the commits after base (the fix) must not stay readable."""
    task = make_repo(tmp_path / "repo", "img")
    repo = tmp_path / "repo"
    (repo / "calc/__init__.py").write_text(CLEAN["calc/__init__.py"])
    _git(repo, "commit", "-qam", "the fix")
    _git(repo, "tag", "v2")
    fixed_blob = _git(repo, "rev-parse", "HEAD:calc/__init__.py").strip()
    clone = tmp_path / "testbed"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    _git(clone, "stash", "list")
    out = subprocess.run(["bash", "-c", checkout_script(task.base_commit)], cwd=clone, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == task.base_commit, out.stderr
    assert _git(clone, "log", "--all", "--format=%H").split() == [task.base_commit]
    assert _git(clone, "for-each-ref").strip() == "" and _git(clone, "status", "--short").strip() == ""
    objects = _git(clone, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
    assert fixed_blob not in objects and len(objects) == 7  # commit, 3 trees, 3 blobs
    assert (clone / ".git/shallow").read_text().strip() == task.base_commit


# -- errors when no engine answers: the real SDK against this machine -----------------------------------

def _engine_answers() -> bool:
    try:
        client = docker_sdk.from_env()
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def test_unreachable_docker_host_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
    with pytest.raises(DockerUnavailable) as info:
        db.connect()
    message = str(info.value)
    assert f"no docker engine answers at {UNREACHABLE}" in message and "--env local" in message


def test_this_machine_without_an_engine_gets_the_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if _engine_answers():
        pytest.skip("a docker engine answers here: nothing to fail")
    with pytest.raises(DockerUnavailable, match="no docker engine answers at the default socket"):
        db.connect()
    task = Task(instance_id="a__b-1", repo="a/b", base_commit="abcd", problem_statement="x")
    with pytest.raises(DockerUnavailable):
        open_session(task, RepoIndex([]), backend="docker")


def test_grading_in_docker_without_an_engine_is_a_graded_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
    task = Task(instance_id="a__b-1", repo="a/b", base_commit="abcd", problem_statement="x",
                FAIL_TO_PASS=["t.py::t"])
    result = grade(task, "", RepoIndex([]), env="docker")
    assert result.status == "error" and "DockerUnavailable" in result.reason and UNREACHABLE in result.reason


def test_cli_env_docker_fails_early_naming_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
    graded = CliRunner().invoke(app, ["grade", "--env", "docker"])
    assert graded.exit_code == 2 and "no docker engine answers" in graded.output
    collected = CliRunner().invoke(app,
                                   ["collect", "--env", "docker", "--out", str(tmp_path / "run"),
                                    "--strategy", "bc", "--expert", "oracle"])
    assert collected.exit_code == 2 and "no docker engine answers" in collected.output
    assert not (tmp_path / "run").exists()  # nothing started
    bogus = CliRunner().invoke(app, ["grade", "--env", "podman"])
    assert bogus.exit_code == 2 and "expected local or docker" in bogus.output


# -- the session around the SDK, with HostDocker ----------------------------------------------------------

def test_missing_image_names_it_with_a_pull_hint(host_docker) -> None:
    client, task = host_docker
    missing = task.model_copy(update={"image_name": "acme/not-here:3"})
    with pytest.raises(DockerImageMissing, match=r"pull it first: docker pull acme/not-here:3"):
        DockerSession.open(missing)
    with pytest.raises(DockerImageMissing, match="pulling it failed"):
        DockerSession.open(missing, config=DockerConfig(pull=True))
    assert client.images.pulled == ["acme/not-here:3"] and not client.run_kwargs


def test_open_starts_a_limited_container_copies_the_editor_and_checks_out_base(host_docker) -> None:
    client, task = host_docker
    limits = SandboxLimits(timeout_s=20, memory_mb=768, max_processes=99)
    with DockerSession.open(task, limits=limits, label="oec-test") as session:
        (kwargs,) = client.run_kwargs
        assert kwargs["image"] == "acme/calc-image:1" and kwargs["network_mode"] == "none"
        assert kwargs["mem_limit"] == "768m" and kwargs["pids_limit"] == 99
        assert kwargs["name"].startswith("oec-oec-test-")
        container = client.container
        folder, archive = container.archives[0]
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            script = tar.extractfile("editor_script.py").read()  # type: ignore[union-attr]
        assert folder == "/opt/oec-tools"
        assert script == EDITOR_SCRIPT.read_bytes()
        assert session.editor_command_prefix.endswith(" /opt/oec-tools/editor_script.py")
        assert any("checkout --quiet --force --detach" in s for s in container.scripts)
        assert session.base_commit == task.base_commit and str(session.path) == "/testbed"
        assert session.run("git rev-parse HEAD").output.strip() == task.base_commit
        _, cmd, workdir = list(client.api.execs.values())[-1]
        assert "conda activate testbed" in cmd[2] and workdir == "/testbed"  # SWE-bench's setup, by default
        container_id = container.id
    assert container_id in client.removed and client.closed


def test_a_base_commit_the_image_lacks_is_a_clear_error_and_the_container_is_removed(host_docker) -> None:
    client, task = host_docker
    absent = task.model_copy(update={"base_commit": "0" * 40})
    with pytest.raises(DockerBackendError, match=r"cannot check out base_commit 0{40} in /testbed of acme/calc-image:1"):
        DockerSession.open(absent)
    assert client.container.id in client.removed


@pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")
def test_run_matches_the_local_sandbox_exit_codes_markers_and_truncation(host_docker, tmp_path: Path) -> None:
    _, task = host_docker
    workspace = tmp_path / "local"
    workspace.mkdir()
    limits = SandboxLimits(timeout_s=20, output_bytes=1000)
    with DockerSession.open(task, limits=limits) as session, \
            Sandbox(workspace, limits=limits, isolation="none") as local:
        for command in ["echo hi; echo err >&2; exit 4", "seq 1 20000", "sleep 30"]:
            timeout = 0.5 if command.startswith("sleep") else None
            ours, theirs = session.run(command, timeout_s=timeout), local.run(command, timeout_s=timeout)
            assert (ours.exit_code, ours.truncated, ours.timed_out, ours.killed_reason) == \
                (theirs.exit_code, theirs.truncated, theirs.timed_out, theirs.killed_reason), command
            assert ours.output == theirs.output, command
        flood = session.run("yes", output_bytes=100)
        assert flood.killed_reason == "output_limit" and flood.exit_code is None
        assert flood.output.endswith(f"[... command killed: it printed more than {4 << 20} bytes ...]")


def _survivors_of_detached_sleeps(session: DockerSession) -> int:
    """Start a background and a setsid'ed sleep of a duration no other process has, then count how many of them
    are still running a few seconds after the command ended (0 when the reaping worked). A host-wide count of
    `sleep 300` also counted other tests' processes."""
    duration = f"300.{uuid.uuid4().int % 10**6:06d}"
    session.run(f"sleep {duration} & setsid sleep {duration} & echo started")
    count = ("for p in /proc/[0-9]*; do tr '\\0' ' ' 2>/dev/null < $p/cmdline; echo; done"
             f" | grep -c '^sleep {duration}' || true")
    deadline = time.monotonic() + 5  # a killed process may take a moment to leave /proc
    while (left := int(session.run(count).output.strip() or 0)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_nothing_a_command_starts_survives_into_the_next(host_docker) -> None:
    _, task = host_docker
    with DockerSession.open(task) as session:
        assert _survivors_of_detached_sleeps(session) == 0


def test_trusted_output_that_is_not_what_the_command_wrote_is_refused(host_docker) -> None:
    _, task = host_docker
    with DockerSession.open(task) as session:
        assert session.exec_trusted("echo hi; echo err >&2; exit 3") == (3, "hi\n", "err\n")
        folder = session._container.root / "tmp/oec-stage/oec-trusted-planted"
        folder.mkdir(mode=0o700)
        (folder / "out").symlink_to(folder.parent / "elsewhere")
        with pytest.raises(DockerBackendError, match="did not write"):
            session._read_outputs("/tmp/oec-stage/oec-trusted-planted")
        (folder / "out").unlink()
        folder.chmod(0o755)
        with pytest.raises(DockerBackendError, match="not the folder oec made"):
            session._read_outputs("/tmp/oec-stage/oec-trusted-planted")
        assert session._read_outputs("/tmp/oec-stage/oec-trusted-missing") == {}


def test_the_watchdog_ends_a_command_the_in_container_deadline_missed(host_docker, monkeypatch) -> None:
    _, task = host_docker
    def no_deadline(command: str, **kw: object) -> list[str]:
        return wrap_command(command, **{**kw, "timeout_s": 3600})  # type: ignore[arg-type]

    monkeypatch.setattr(db, "wrap_command", no_deadline)
    monkeypatch.setattr(db, "_WATCHDOG_GRACE_S", 0.5)
    with DockerSession.open(task) as session:
        started = time.monotonic()
        result = session.run("sleep 60", timeout_s=0.5)
        assert result.timed_out and result.exit_code is None and time.monotonic() - started < 15


def test_close_from_another_thread_stops_a_running_command(host_docker) -> None:
    _, task = host_docker
    session = DockerSession.open(task)
    results = []
    runner = threading.Thread(target=lambda: results.append(session.run("sleep 60", timeout_s=120)))
    runner.start()
    time.sleep(1.0)
    session.close()
    runner.join(timeout=20)
    assert not runner.is_alive() and results and results[0].exit_code != 0
    with pytest.raises(Exception, match="closed"):
        session.run("true")


def test_the_editor_tool_runs_the_containers_copy_and_the_diff_is_the_patch(host_docker) -> None:
    _, task = host_docker
    with open_session(task, RepoIndex([]), backend="docker") as session:
        fix = Action(tool="str_replace_editor", arguments={"command": "str_replace", "path": "calc/__init__.py",
                                            "old_str": "return a - b", "new_str": "return a + b"})
        observation = execute(fix, session)
        assert "return a + b" in observation.text, observation.text
        patch = session.diff()
    assert "+    return a + b" in patch and "oec-editor" not in patch and patch == task.patch


def test_tools_use_the_sessions_editor_prefix() -> None:
    seen = []

    class Env:
        editor_command_prefix = "/opt/py /opt/oec-tools/editor_script.py"

        def run(self, command, **_):
            seen.append(command)
            return type("R", (), {"output": "ok", "timed_out": False, "exit_code": 0})()

    execute(Action(tool="str_replace_editor", arguments={"command": "view", "path": "a.py"}), Env())
    assert seen[0].startswith("/opt/py /opt/oec-tools/editor_script.py .git/oec-editor ")
    local_prefix = EnvSession.editor_command_prefix.fget(None)  # type: ignore[attr-defined]
    assert local_prefix == f"python {EDITOR_SCRIPT}"  # the local backend runs what it always ran


def test_grading_in_docker_applies_inside_the_container_and_decides_as_locally(host_docker) -> None:
    client, task = host_docker
    gold = grade(task, task.patch, RepoIndex([]), env="docker")
    assert gold.resolved and gold.status == "resolved" and gold.apply_method == "git apply", gold.reason
    assert gold.tests == {"tests/test_calc.py::test_add": "PASSED", "tests/test_calc.py::test_mul": "PASSED"}
    empty = grade(task, "", RepoIndex([]), env=DockerConfig())
    assert not empty.resolved and empty.fail_to_pass.failure == ["tests/test_calc.py::test_add"]
    garbage = grade(task, "--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n", RepoIndex([]), env="docker")
    assert garbage.status == "patch_failed" and "git apply" in garbage.reason
    assert len(client.removed) == 3  # a fresh container per grading, each removed


def test_a_rollout_in_docker_records_the_patch_and_the_docker_grade(host_docker) -> None:
    from oec.collect.rollout import RolloutConfig, run_rollout
    from oec.collect.schedules import FixedSwitch
    from oec.models.registry import make_provider
    from oec.models.scripted import register_script

    client, task = host_docker
    register_script("dk-student", ["```bash\ncat calc/__init__.py\n```"], final="```bash\nls\n```")
    config = RolloutConfig(strategy="oec", student=make_provider("scripted:dk-student"),
                           expert=make_provider("oracle"), switch=FixedSwitch(1), repos=RepoIndex([]),
                           env_backend="docker")
    trajectory = asyncio.run(run_rollout(task, 0, config))
    assert trajectory.exit_reason == "submitted" and trajectory.resolved, (trajectory.error, trajectory.reward)
    assert "+    return a + b" in trajectory.patch
    assert len(client.run_kwargs) == 2  # the rollout's container, then the grader's


def test_remove_orphans_removes_only_dead_processes_containers_of_this_host(host_docker) -> None:
    client, _ = host_docker
    import socket

    dead = subprocess.Popen(["true"])
    dead.wait()

    def fake(name: str, host: str, pid: int) -> HostContainer:
        c = HostContainer(client, client.tmp, {"name": name, "labels": {db.LABEL: "1", "oec.host": host,
                                                                        "oec.pid": str(pid)}})
        return c

    here = socket.gethostname()
    client.listed = [fake("dead", here, dead.pid), fake("alive", here, os.getpid()),
                     fake("elsewhere", "another-host", dead.pid)]
    assert db.remove_orphans(client) == ["dead"]
    assert client.removed == [client.listed[0].id]


# -- a real engine, end to end (a missing engine fails these, with the reason) ----------------------------


@pytest.fixture(scope="module")
def real_task(engine, tmp_path_factory: pytest.TempPathFactory) -> Task:
    """An image FROM the locally built base (python3, pytest, git) with the calc repo at /testbed."""
    context = tmp_path_factory.mktemp("docker-context")
    tag = f"oec-test-calc:{uuid.uuid4().hex[:8]}"
    task = make_repo(context / "testbed", tag)
    docker_images.repository_image(engine, tag, context / "testbed")
    yield task
    engine.images.remove(tag, force=True)


def test_real_container_limits_and_commands(engine, real_task: Task) -> None:
    limits = SandboxLimits(timeout_s=60, output_bytes=2000, memory_mb=512, max_processes=64)
    session = DockerSession.open(real_task, limits=limits)
    try:
        host_config = engine.containers.get(session._container.id).attrs["HostConfig"]
        assert host_config["NetworkMode"] == "none"
        assert host_config["Memory"] == 512 << 20 and host_config["PidsLimit"] == 64
        hello = session.run("echo hi && pwd && git rev-parse HEAD")
        assert hello.exit_code == 0 and hello.output.split() == ["hi", "/testbed", real_task.base_commit]
        assert session.run("exit 3").exit_code == 3
        started = time.monotonic()
        slow = session.run("echo begun; sleep 60", timeout_s=1)
        assert slow.timed_out and slow.exit_code is None and time.monotonic() - started < 15
        assert slow.output.startswith("begun\n") and "command timed out after 1 s" in slow.output
        assert _survivors_of_detached_sleeps(session) == 0
        long = session.run("seq 1 100000")
        assert long.exit_code == 0 and long.truncated and "bytes truncated ..." in long.output
        flood = session.run("yes")
        assert flood.killed_reason == "output_limit"
        net = session.run("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\"")
        assert net.exit_code != 0
        assert session.run("ls /sys/class/net").output.split() == ["lo"]
    finally:
        container_id = session._container.id
        session.close()
    with pytest.raises(NotFound):
        engine.containers.get(container_id)


def test_real_container_editor_diff_and_grading(engine, real_task: Task) -> None:
    with DockerSession.open(real_task) as session:
        fix = Action(tool="str_replace_editor", arguments={"command": "str_replace", "path": "calc/__init__.py",
                                            "old_str": "return a - b", "new_str": "return a + b"})
        assert "return a + b" in execute(fix, session).text
        create = Action(tool="str_replace_editor", arguments={"command": "create", "path": "notes/new.txt", "file_text": "hi\n"})
        execute(create, session)
        patch = session.diff()
    assert "+    return a + b" in patch and "+++ b/notes/new.txt" in patch and "oec-editor" not in patch
    gold = grade(real_task, real_task.patch, RepoIndex([]), env="docker")
    assert gold.resolved, (gold.reason, gold.log_excerpt)
    empty = grade(real_task, "", RepoIndex([]), env="docker")
    assert not empty.resolved and empty.fail_to_pass.failure == ["tests/test_calc.py::test_add"]


def test_real_engine_missing_image_is_named(engine) -> None:
    task = Task(instance_id="a__b-1", repo="a/b", base_commit="abcd", problem_statement="x",
                image_name=f"oec-no-such-image:{uuid.uuid4().hex[:8]}")
    with pytest.raises(DockerImageMissing, match=f"docker pull {task.image_name}"):
        DockerSession.open(task)
