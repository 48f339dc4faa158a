"""The docker backend: one rollout's environment in a container of the task's image.

SWE-bench and SWE-smith publish one image per task (or per repository) with the
repository at /testbed and its Python environment installed, so the docker
backend needs no repos folder and no per-repo setup: it starts a container,
checks out base_commit, and runs commands through `docker exec` with the same
limits as the local sandbox (`oec.env.sandbox`):

- no network (`network_mode="none"`), memory (`mem_limit`, swap included) and
  processes (`pids_limit`) bounded by the container's cgroup;
- a per-command deadline and no leftover processes, enforced inside the
  container by `oec.env.docker_shell.wrap_command`, plus a host-side watchdog in
  case the wrapper itself is stuck;
- the same output cap and truncation markers as the local sandbox (its helper
  is reused, not rewritten).

The session has the surface of `EnvSession` (run, run_stateful, diff, close, path, checkpoint)
so the episode loop, the tools and the grader do not care which backend runs.
The `docker` SDK is an optional extra (`oec[scale]`), imported only here.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import shlex
import socket
import tarfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from oec.env.bash_state import STATE_FILE_NAME, stateful_script
from oec.env.docker_shell import (
    bug_state_script,
    checkout_script,
    diff_script,
    find_python_script,
    init_processes_script,
    reap_script,
    sweep_script,
    wrap_command,
)
from oec.env.git_scripts import CheckpointSteps
from oec.env.leftovers import pid_alive
from oec.env.limits import SandboxLimits
from oec.env.output import (  # the output cap both backends share: they truncate (and say so) alike
    TRUSTED_OUTPUT_BYTES,
    CommandResult,
    OutputCap,
    command_result,
    output_ceiling,
)
from oec.env.sandbox import PatchUnavailable, SandboxError
from oec.grading.patch_files import canonical, parse_patch_files
from oec.grading.report_plugin import PYTEST_REPORT_PLUGIN
from oec.tasks.model import Task

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = [
    "DEFAULT_SETUP",
    "DockerBackendError",
    "DockerConfig",
    "DockerImageMissing",
    "DockerSession",
    "DockerUnavailable",
    "connect",
    "container_kwargs",
    "image_for",
    "remove_orphans",
    "swebench_image_name",
]

log = logging.getLogger(__name__)

#: SWE-bench and SWE-smith images install the task's environment as conda env `testbed`; activated the
#: way SWE-bench's own eval scripts do it, and only where it exists, so other images run unchanged
DEFAULT_SETUP = ("if [ -d /opt/miniconda3/envs/testbed ]; then "
                 ". /opt/miniconda3/bin/activate && conda activate testbed; fi")
EDITOR_DIR = PurePosixPath("/opt/oec-tools")  # outside the repository, so never in the diff
PLUGIN_DIR = EDITOR_DIR / "pytest"            # oec's pytest report plugin, alone in its folder
STAGE_DIR = PurePosixPath("/tmp/oec-stage")    # files of oec's own commands (patches, test reports, outputs)
STATE_PATH = PurePosixPath("/tmp") / STATE_FILE_NAME  # the agent's bash state (oec.env.bash_state)
TRUSTED_TIMEOUT_S = 600                        # oec's own git in a repository the model may have configured
LABEL = "oec.session"                          # every container oec starts carries it (see remove_orphans)
_WATCHDOG_GRACE_S = 10.0   # the in-container `timeout` should have ended the command by then
_EXIT_POLL_S = 5.0         # how long to wait for the engine to report an exec's exit code
_OUTPUTS = ("out", "err", "code")  # what a trusted command leaves in its folder


class DockerBackendError(SandboxError):
    """The docker backend cannot do what was asked (container start, checkout, copy)."""


class DockerUnavailable(DockerBackendError):
    """No docker engine answers (or the SDK is not installed)."""


class DockerImageMissing(DockerBackendError):
    """The task's image is not on the engine and pulling was not asked for (or failed)."""


@dataclass(frozen=True)
class DockerConfig:
    """How tasks map to images and containers; the defaults fit SWE-bench's published images.

    namespace/arch/tag: SWE-bench's image naming (a task's own `image_name` wins);
    namespace "" names locally built images (`sweb.eval.arm64.<id>`).
    setup: shell run before every command (agent and tests alike), in the command's own
    shell: SWE-bench/SWE-smith images need their conda env `testbed` activated.
    workdir: where the image keeps the repository.
    checkout: check out base_commit at start (off for images already at the task's state).
    pull: pull a missing image instead of failing (images are GBs: off by default).
    cpus: CPU quota per container (None: unlimited), for many containers per node.
    """

    namespace: str = "swebench"
    arch: str = "x86_64"
    tag: str = "latest"
    setup: str | None = DEFAULT_SETUP
    workdir: str = "/testbed"
    checkout: bool = True
    pull: bool = False
    cpus: float | None = None


def swebench_image_name(instance_id: str, *, namespace: str = "swebench", arch: str = "x86_64",
                        tag: str = "latest") -> str:
    """SWE-bench's instance image: `<namespace>/sweb.eval.<arch>.<id>:<tag>`, "__" -> "_1776_", lowercased.

    Docker Hub repository names cannot hold "__" nor capitals, hence the rewriting.
    """
    key = f"sweb.eval.{arch}.{instance_id}".replace("__", "_1776_")
    name = f"{namespace}/{key}" if namespace else key
    return f"{name}:{tag}".lower()


def image_for(task: Task, config: DockerConfig = DockerConfig()) -> str:
    """The task's `image_name` (SWE-smith rows carry one), else SWE-bench's naming by instance_id."""
    if task.image_name:
        return task.image_name
    return swebench_image_name(task.instance_id, namespace=config.namespace, arch=config.arch, tag=config.tag)


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock or the docker context)"


def connect() -> DockerClient:
    """A client for the engine at DOCKER_HOST (or the default socket), checked with a ping.

    Raises DockerUnavailable with what to do, rather than the SDK's connection traceback.
    """
    try:
        import docker
    except ImportError as exc:
        raise DockerUnavailable("the docker backend needs the docker SDK: pip install 'oec[scale]'") from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, OSError: all mean "no engine"
        raise DockerUnavailable(
            f"no docker engine answers at {_engine_address()}: {exc}. Start one (e.g. `systemctl start docker`), "
            "point DOCKER_HOST at one that runs, or use --env local"
        ) from exc
    return client


def ensure_image(client: DockerClient, image: str, *, pull: bool = False) -> None:
    """Fail with `docker pull <image>` in the message when the image is not on the engine."""
    from docker.errors import DockerException, ImageNotFound

    try:
        client.images.get(image)
        return
    except ImageNotFound:
        if not pull:
            raise DockerImageMissing(f"docker image {image} is not on the engine at {_engine_address()}; "
                                     f"pull it first: docker pull {image}") from None
    try:
        client.images.pull(image)
    except DockerException as exc:
        raise DockerImageMissing(f"docker image {image} is missing and pulling it failed: {exc}; "
                                 f"try: docker pull {image}") from exc


def container_kwargs(image: str, limits: SandboxLimits, config: DockerConfig, *, name: str,
                     instance_id: str) -> dict[str, Any]:
    """Arguments of `client.containers.run`: the local sandbox's limits, expressed as container settings.

    init: a real PID 1 reaps the commands' orphans; with `sleep` as PID 1 they would stay
    zombies and count against pids_limit. memswap_limit = mem_limit: no swap beyond the cap.
    The entrypoint is replaced so images with their own entrypoint still just wait.
    """
    kwargs: dict[str, Any] = {
        "image": image,
        "entrypoint": ["sleep"],
        "command": ["infinity"],
        "detach": True,
        "init": True,
        "network_mode": "none",
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",
        "pids_limit": limits.max_processes,
        "working_dir": config.workdir,
        "environment": {"PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb", "PYTHONUNBUFFERED": "1",
                        "PYTHONDONTWRITEBYTECODE": "1"},
        "security_opt": ["no-new-privileges"],
        "name": name,
        "labels": {LABEL: "1", "oec.instance_id": instance_id, "oec.host": socket.gethostname(),
                   "oec.pid": str(os.getpid())},
    }
    if config.cpus:
        kwargs["nano_cpus"] = int(config.cpus * 1e9)
    return kwargs


def _tar_file(name: str, data: bytes, mode: int = 0o644) -> bytes:
    """A tar archive of one file, for `put_archive` into its folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _editor_script() -> bytes:
    """The str_replace_editor script's bytes, found without importing the agent package."""
    spec = find_spec("oec.agent.editor_script")
    if spec is None or spec.origin is None:
        raise DockerBackendError("oec.agent.editor_script not found: is oec installed completely?")
    return Path(spec.origin).read_bytes()


def _remove_container(client: Any, container_id: str, close_client: bool) -> None:
    """Force-remove the container (kills what runs in it); safe at close, at GC and at exit."""
    try:
        client.api.remove_container(container_id, force=True)
    except Exception as exc:  # already gone, or the engine went away: nothing more to do
        log.debug("docker: could not remove %s: %s", container_id[:12], exc)
    if close_client:
        try:
            client.close()
        except Exception as exc:
            log.debug("docker: could not close the client: %s", exc)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _close_stream(stream: Any) -> None:
    """Close an exec's output stream; it may be closed already, or (ssh://) not closable at all."""
    try:
        stream.close()
    except Exception as exc:
        log.debug("docker: could not close an exec stream: %s", exc)


class _Watchdog:
    """Ends a command the in-container deadline did not (a stuck wrapper, an engine hiccup).

    It closes the output stream, so `run` returns, then kills the command's processes
    (in that order: the kill's own exec can block behind a stream nobody reads).
    """

    def __init__(self, delay_s: float, kill: Any, stream: Any) -> None:
        self.fired = False
        self._kill, self._stream = kill, stream
        self._timer = threading.Timer(delay_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        _close_stream(self._stream)  # first, or the kill's exec can block behind the unread stream
        try:
            self._kill()
        except Exception as exc:
            log.warning("docker: watchdog could not kill a command: %s", exc)

    def cancel(self) -> None:
        self._timer.cancel()


class DockerSession(CheckpointSteps):
    """A container of the task's image at base_commit: run commands, read the diff, close."""

    def __init__(self, task: Task, client: DockerClient, container: Any, *, image: str, limits: SandboxLimits,
                 config: DockerConfig, owns_client: bool = True) -> None:
        self.task = task
        self.image = image
        self.limits = limits
        self.config = config
        self.path = PurePosixPath(config.workdir)
        self.base_commit = task.base_commit
        #: what `oec.agent.tools` runs the editor with: the in-container copy of editor_script.py
        self.editor_command_prefix = f"python3 {EDITOR_DIR / 'editor_script.py'}"
        self.pytest_plugin_dir = str(PLUGIN_DIR)
        self._client = client
        self._container = container
        self._lock = threading.Lock()      # one command at a time, as in the local sandbox
        self._marker: str | None = None    # the running command's marker, for close() from another thread
        self._closed = False
        self._hostname = container.id[:12]  # docker's default hostname: the id's first 12 digits
        self._init_pids: tuple[int, ...] = ()  # the container's own processes, spared by exec_trusted
        self._finalizer = weakref.finalize(self, _remove_container, client, container.id, owns_client)

    @classmethod
    def open(cls, task: Task, *, limits: SandboxLimits | None = None, config: DockerConfig = DockerConfig(),
             label: str | None = None, client: DockerClient | None = None,
             purpose: str = "agent") -> DockerSession:
        """Start the container, copy the editor in, put the repository at the task's start; on any failure
        remove it. A SWE-smith row's start is built from the image's clean repository (`purpose`: the agent
        works without the FAIL_TO_PASS tests' files, grading has them)."""
        own_client = client is None
        client = client or connect()
        image = image_for(task, config)
        limits = limits or SandboxLimits()
        slug = re.sub(r"[^a-zA-Z0-9_.-]+", "_", label or task.instance_id)[:60].strip("_.-") or "task"
        name = f"oec-{slug}-{uuid.uuid4().hex[:8]}"
        try:
            ensure_image(client, image, pull=config.pull)
            container = client.containers.run(**container_kwargs(image, limits, config, name=name,
                                                                 instance_id=task.instance_id))
        except DockerBackendError:
            if own_client:
                client.close()
            raise
        except Exception as exc:
            if own_client:
                client.close()
            raise DockerBackendError(f"could not start a container of {image}: {exc}") from exc
        session = cls(task, client, container, image=image, limits=limits, config=config, owns_client=own_client)
        try:
            session._note_init()
            session._install_editor()
            if task.bug_shaped:
                session._build_bug_state(with_tests=purpose == "grading")
            elif config.checkout:
                session._checkout()
        except BaseException:
            session.close()
            raise
        return session

    # -- the EnvSession surface -------------------------------------------------------------

    def run(self, command: str, *, timeout_s: float | None = None, output_bytes: int | None = None) -> CommandResult:
        """Run `command` with bash in the repository; same result, limits and markers as `Sandbox.run`."""
        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        cap = OutputCap(self.limits.output_bytes if output_bytes is None else output_bytes)
        ceiling = output_ceiling(cap)
        marker = uuid.uuid4().hex
        api = self._client.api
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            start = time.monotonic()
            argv = wrap_command(command, timeout_s=timeout, marker=marker, setup=self.config.setup)
            try:
                exec_id = api.exec_create(self._container.id, argv, stdout=True, stderr=True, stdin=False,
                                          tty=False, workdir=str(self.path))["Id"]
                stream = api.exec_start(exec_id, stream=True)
            except Exception as exc:  # the container died (OOM-killed init, removed from outside)
                raise DockerBackendError(f"cannot run a command in the container of {self.image}: {exc}") from exc
            self._marker = marker
            watchdog = _Watchdog(timeout + _WATCHDOG_GRACE_S, lambda: self._kill(marker), stream)
            reason: str | None = None
            try:
                for chunk in stream:
                    cap.add(chunk)
                    if cap.total > ceiling:
                        reason = "output_limit"
                        # close the flooding stream first: the engine's exec-exit handling blocks on a stream
                        # nobody reads, and the kill's own exec would then never return
                        _close_stream(stream)
                        self._kill(marker)
                        break
            except Exception:
                if not watchdog.fired:  # the watchdog closed the stream under the loop: a timeout, below
                    raise
            finally:
                watchdog.cancel()
                _close_stream(stream)
                self._marker = None
            exit_code = None if reason else self._exit_code(exec_id)
        duration = time.monotonic() - start
        if reason is None and (watchdog.fired or (exit_code == 137 and duration >= timeout)):
            reason = "timeout"  # 137 = SIGKILL from the in-container `timeout`, at the deadline
        return command_result(command, cap, reason, exit_code, timeout, ceiling, duration)

    def run_stateful(self, command: str, *, timeout_s: float | None = None,
                     output_bytes: int | None = None) -> CommandResult:
        """The agent's bash, as `EnvSession.run_stateful`: the same script, the state in the container's /tmp
        (after the task's setup, so a model that deactivated conda stays deactivated)."""
        result = self.run(stateful_script(command, str(STATE_PATH)), timeout_s=timeout_s, output_bytes=output_bytes)
        return dataclasses.replace(result, command=command)

    def diff(self) -> str:
        """Everything changed since base_commit, never truncated (it is the rollout's patch)."""
        code, out, err = self.exec_trusted(f"{diff_script(self.base_commit)} | head -c {TRUSTED_OUTPUT_BYTES + 1}; "
                                           "exit ${PIPESTATUS[0]}")
        if len(out.encode("utf-8", errors="replace")) > TRUSTED_OUTPUT_BYTES:
            raise PatchUnavailable(f"the container's diff is larger than {TRUSTED_OUTPUT_BYTES} bytes")
        if code != 0:
            raise PatchUnavailable(f"git diff failed in {self.image}: {err.strip()[-500:] or out.strip()[-500:]}")
        return out

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file into the container (parents created), e.g. a patch to apply.

        The archive holds the file alone: a folder entry would reset the mode of an existing
        folder (e.g. /tmp's 1777) when the engine unpacks it.
        """
        payload = data.encode() if isinstance(data, str) else data
        target = PurePosixPath(path) if PurePosixPath(path).is_absolute() else self.path / path
        self._check(f"mkdir -p {shlex.quote(str(target.parent))}", "mkdir")
        if not self._container.put_archive(str(target.parent), _tar_file(target.name, payload, mode)):
            raise DockerBackendError(f"could not copy {target} into the container of {self.image}")

    def exec_trusted(self, script: str) -> tuple[int, str, str]:
        """Run oec's own shell (git) in the repository: no output cap, no task setup, a generous deadline.

        Returns (exit code, stdout, stderr); only for commands oec writes, never the model's. It runs in
        the container, as everything that reads a repository the model could configure must. It first
        kills every process the model left (one that dropped its marker outlived the reaping): the model
        runs as the image's user, root in SWE-bench's images, so no file mode would keep such a process
        from rewriting the output files (or a staged report) before oec reads them. The output goes to a
        folder made for this call (0700; mkdir refuses one that exists), read back whole and checked.
        """
        folder = STAGE_DIR / f"oec-trusted-{uuid.uuid4().hex}"
        stage, out = shlex.quote(str(STAGE_DIR)), shlex.quote(str(folder))
        sweep = f"( {sweep_script(self._init_pids, self._hostname)} ) && " if self._init_pids else ""
        runner = (f"{sweep}{{ {{ [ -d {stage} ] && [ ! -L {stage} ]; }} || {{ rm -f {stage}; mkdir -p {stage}; }}; }} "
                  f"&& mkdir -m 700 {out} && {{ timeout -s KILL {TRUSTED_TIMEOUT_S} bash -c {shlex.quote(script)} "
                  f">{out}/out 2>{out}/err; echo $? >{out}/code; }}")
        with self._lock:
            if self._closed:
                raise SandboxError("sandbox is closed")
            # the output goes to files, read back as an archive: an attached exec's stream loses its output now
            # and then under load (exit 0, nothing read), and git's answers must not vanish
            self._container.exec_run(["bash", "-c", runner], workdir=str(self.path))
            files = self._read_outputs(str(folder))
            self._container.exec_run(["rm", "-rf", str(folder)])
        if "code" not in files:
            return -1, "", ("oec's command did not run: the processes left in the container could not be ended, "
                            "or its stage folder could not be made")
        status = _text(files["code"]).strip()
        return (int(status) if status.lstrip("-").isdigit() else -1), _text(files.get("out")), _text(files.get("err"))

    def _read_outputs(self, folder: str) -> dict[str, bytes]:
        """A trusted command's output files, through the archive API (no exec stream); {} when the folder is missing.

        Anything but what the command made (the folder, 0700, holding plain files of the folder's owner) is
        refused: a process of the model's was there after all.
        """
        from docker.errors import NotFound

        try:
            chunks, _ = self._container.get_archive(folder)
        except NotFound:
            return {}
        name = PurePosixPath(folder).name
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            members = {member.name.rstrip("/"): member for member in tar.getmembers()}
            top = members.pop(name, None)
            if top is None or not top.isdir() or top.mode & 0o777 != 0o700:
                raise DockerBackendError(f"{folder} in the container of {self.image} is not the folder oec made")
            for path, member in members.items():
                base = path.removeprefix(name + "/")
                if base not in _OUTPUTS or not member.isreg() or member.uid != top.uid:
                    raise DockerBackendError(f"{folder} in the container of {self.image} holds {base!r}, "
                                             "which oec's command did not write")
                handle = tar.extractfile(member)
                files[base] = handle.read() if handle is not None else b""
        return files

    def stage_file(self, name: str, data: bytes) -> str:
        """A file for oec's own commands (a patch to apply, a report to fill), outside the repository."""
        path = str(STAGE_DIR / name)
        self.write_file(path, data)
        return path

    def read_staged(self, name: str, *, limit: int) -> bytes:
        """What a command left in a staged file (a test report), at most `limit` bytes."""
        code, out, _ = self.exec_trusted(f"head -c {int(limit)} {shlex.quote(str(STAGE_DIR / name))}")
        return out.encode("utf-8") if code == 0 else b""

    def close(self) -> None:
        """Kill a command still running (from another thread), then remove the container."""
        self._closed = True
        marker = self._marker
        if marker is not None:
            try:
                self._kill(marker)
            except Exception as exc:  # the container is gone already: removing it below is all there is
                log.debug("docker: could not kill the running command: %s", exc)
        with self._lock:
            self._finalizer()

    def __enter__(self) -> DockerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _check(self, script: str, what: str) -> str:
        code, out, err = self.exec_trusted(script)
        if code != 0:
            raise DockerBackendError(f"{what} failed in the container of {self.image}: {err.strip() or out.strip()}")
        return out

    def _note_init(self) -> None:
        """Note the container's own processes (PID 1's children: its `sleep`) before anything of the model's ran;
        `exec_trusted` kills every other. Where they cannot be told apart (the hostname is not the id's), it
        kills none, and says so."""
        code, out, _ = self.exec_trusted(init_processes_script(self._hostname))
        pids = tuple(int(line) for line in out.split() if line.isdigit())
        if code == 0 and pids:
            self._init_pids = pids
        else:
            log.warning("docker: the container of %s is not recognisable from inside (hostname not %s): a process "
                        "the model leaves could outlive its command and tamper with oec's own", self.image,
                        self._hostname)

    def _install_editor(self) -> None:
        """Copy editor_script.py and the pytest report plugin in, and pick a Python >= 3.6 for the editor
        (conda's base one on SWE-bench images)."""
        self.write_file(str(EDITOR_DIR / "editor_script.py"), _editor_script())
        self.write_file(str(PLUGIN_DIR / PYTEST_REPORT_PLUGIN.name), PYTEST_REPORT_PLUGIN.read_bytes())
        code, out, _ = self.exec_trusted(find_python_script())
        if code == 0 and out.strip():
            self.editor_command_prefix = f"{out.strip().splitlines()[-1]} {EDITOR_DIR / 'editor_script.py'}"
        else:
            log.warning("docker: no python in %s; the str_replace_editor tool will not work", self.image)

    def _checkout(self) -> None:
        code, out, err = self.exec_trusted(checkout_script(self.task.base_commit))
        if code != 0:
            raise DockerBackendError(
                f"{self.task.instance_id}: cannot check out base_commit {self.task.base_commit} in "
                f"{self.config.workdir} of {self.image}: {err.strip() or out.strip()}")
        self.base_commit = out.strip().splitlines()[-1]

    def _build_bug_state(self, *, with_tests: bool) -> None:
        """SWE-smith's two states without its mirror branches: the image's clean tree plus the bug, minus the
        FAIL_TO_PASS tests' files unless grading; committed as the only commit there is."""
        changes = parse_patch_files(self.task.patch)
        if any(".git" in part.lower().split("/") for change in changes for part in change.paths):
            raise DockerBackendError(f"{self.task.instance_id}: the row's patch writes into .git")
        staged = self.stage_file(f"oec-bug-{uuid.uuid4().hex}.diff", canonical(changes).encode("utf-8"))
        test_files = sorted({t.split("::", 1)[0] for t in self.task.FAIL_TO_PASS if "::" in t})
        code, out, err = self.exec_trusted(bug_state_script(staged, [] if with_tests else test_files))
        if code != 0:
            raise DockerBackendError(f"{self.task.instance_id}: cannot build the task's start from the clean "
                                     f"repository of {self.image}: {err.strip()[-500:] or out.strip()[-500:]}")
        self.base_commit = out.strip().splitlines()[-1]

    def _kill(self, marker: str) -> None:
        """Kill a command's processes from a second exec (the engine cannot kill an exec)."""
        self._container.exec_run(["sh", "-c", reap_script(marker)])  # attached: returns when it is done

    def _exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code; the engine may report it a moment after the stream ends."""
        deadline = time.monotonic() + _EXIT_POLL_S
        while True:
            try:
                info = self._client.api.exec_inspect(exec_id)
            except Exception:  # the container is gone (closed from another thread): no exit code
                return None
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def remove_orphans(client: DockerClient | None = None) -> list[str]:
    """Remove containers that oec started on this host from processes that are gone (a SIGKILLed run).

    A killed run cannot remove its containers, which would `sleep infinity` forever; this is
    what a resumed run calls to clean them up. Returns the names removed.
    """
    client = client or connect()
    host = socket.gethostname()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        labels = container.labels or {}
        if labels.get("oec.host") != host or not labels.get("oec.pid", "").isdigit():
            continue
        pid = int(labels["oec.pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        container.remove(force=True)
        removed.append(container.name)
    return removed
