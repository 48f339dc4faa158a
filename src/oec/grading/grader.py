"""Grade a patch for a task as the SWE-bench harness decides "resolved", hardened against a patch that games it.

Screen the patch (`patch_policy`: what touches `.git` is refused; the
deciding test files, pytest's configuration and plugins, compiled code and
modules that shadow the harness are dropped, and recorded) -> fresh
environment at base_commit -> apply the rest INSIDE the sandbox -> apply
test_patch -> run the task's tests with oec's report plugin -> per-test
status from that report (never from lines the tests print) -> resolved iff
every FAIL_TO_PASS and every PASS_TO_PASS test passes, where an XFAIL counts
only for a test that was XFAIL at the base too.

`env` picks where: "local" (a workspace of the repos folder, in the bubblewrap
sandbox) or "docker" (a fresh container of the task's image, tests run after
the image's setup such as SWE-bench's conda activation).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from oec.env.repos import RepoIndex
from oec.env.sandbox import CommandResult, SandboxLimits
from oec.env.session import EnvBackend, EnvSession, Isolation, open_session
from oec.grading.apply import apply_for_grading, apply_patch
from oec.grading.log_parsers import PASSING, TestStatus, parse_log
from oec.grading.patch_policy import screen
from oec.grading.report_plugin import MAX_REPORT_BYTES, parse_report, plugin_env_script
from oec.grading.specs import RepoSpec, spec_for, test_command
from oec.grading.test_ids import match_statuses
from oec.tasks.model import Task

if TYPE_CHECKING:
    from oec.env.docker_backend import DockerSession

GradeStatus = Literal["resolved", "unresolved", "patch_refused", "patch_failed", "test_patch_failed", "timeout",
                      "error"]
StatusSource = Literal["report", "log"]

#: grading runs whole test files: generous time, and a log big enough to keep every status line
GRADING_LIMITS = SandboxLimits(timeout_s=1800.0, output_bytes=20_000_000, memory_mb=8192, max_processes=512)
LOG_EXCERPT_CHARS = 4000
#: the environment of the test run: no bytecode written into the workspace (a fresh one holds none, and the
#: patch's own compiled files were dropped); a pycache prefix would also make every stdlib import recompile
_TEST_ENV = "export PYTHONDONTWRITEBYTECODE=1"
_RUNS_PYTEST = re.compile(r"(^|[\s/;&|(])(py\.test|pytest)(\s|$|;)|-m\s+pytest\b")


class TestGroup(BaseModel):
    __test__ = False  # not a pytest test class
    success: list[str] = Field(default_factory=list)
    failure: list[str] = Field(default_factory=list)


class GradeResult(BaseModel):
    """The reward of one patch: resolved or not, why, every deciding test's status, and what was left out."""

    instance_id: str
    resolved: bool
    status: GradeStatus
    reason: str | None = None
    apply_method: str | None = None
    test_cmd: str | None = None
    tests: dict[str, str] = Field(default_factory=dict, description="status of each F2P/P2P test; MISSING if not run")
    fail_to_pass: TestGroup = Field(default_factory=TestGroup)
    pass_to_pass: TestGroup = Field(default_factory=TestGroup)
    dropped: dict[str, str] = Field(default_factory=dict, description="files of the patch not applied, and why")
    status_source: StatusSource | None = Field(default=None, description="where the statuses came from")
    log_excerpt: str = ""
    duration_s: float = 0.0


def default_test_command(task: Task) -> str:
    """The command that runs the task's deciding tests: its own test_cmd, else its repository's (`specs`)."""
    return test_command(task)


def decide(task: Task, statuses: Mapping[str, TestStatus], *, xfail_at_base: set[str] | None = None,
           id_rules: tuple[str, ...] = ("cut-at-space",)) -> tuple[bool, dict[str, str], TestGroup, TestGroup]:
    """Pure decision from parsed statuses: every F2P and every P2P test must pass.

    A listed id is matched to the reported ones as listed, else through `id_rules`
    (the bends the task file's own parser made, `oec.grading.test_ids`).
    `xfail_at_base`: when given, an XFAIL passes only for the tests in it (an
    expected failure that was expected at the base too); a test that passed at
    the base and "fails as expected" now was broken and marked, not fixed.
    """
    matched = match_statuses(task.FAIL_TO_PASS + task.PASS_TO_PASS, statuses, id_rules)
    tests: dict[str, str] = {}
    groups = []
    for ids in (task.FAIL_TO_PASS, task.PASS_TO_PASS):
        group = TestGroup()
        for test_id in ids:
            status = matched.get(test_id)
            tests[test_id] = status.value if status is not None else "MISSING"
            passed = status in PASSING and not (
                status == TestStatus.XFAIL and xfail_at_base is not None and test_id not in xfail_at_base)
            (group.success if passed else group.failure).append(test_id)
        groups.append(group)
    f2p, p2p = groups
    resolved = not f2p.failure and not p2p.failure and bool(task.FAIL_TO_PASS or task.PASS_TO_PASS)
    return resolved, tests, f2p, p2p


@dataclass
class TestRun:
    """One run of the task's tests: the command's result, the statuses, where they came from, or why none."""

    __test__ = False
    run: CommandResult
    statuses: dict[str, TestStatus]
    source: StatusSource | None
    problem: tuple[GradeStatus, str] | None = None


def _setup(session: EnvSession | DockerSession, spec: RepoSpec) -> list[str]:
    """What runs before the test command: the spec's exports, and in an image, SWE-bench's re-install.

    The re-install is repeated as SWE-bench's eval script does (django installs itself into
    site-packages), offline: an editable install needs none, another gets no build isolation
    and no index (the container has no network)."""
    if isinstance(session, EnvSession):
        return []  # a local task's environment is the user's python_env (read-only) or oec's own
    steps = list(spec.env_setup)
    install = spec.reinstall
    if install and " -e " not in f" {install} " and " --editable" not in install:
        if "pip install" in install:
            install += " --no-build-isolation --no-deps --no-index"
        steps.append(install)
    return steps


def run_tests(session: EnvSession | DockerSession, task: Task, spec: RepoSpec | None = None) -> TestRun:
    """Run the task's test command with oec's report plugin loaded; statuses from its report when pytest ran.

    A pytest run that started but never reported its end (a patch that calls
    os._exit, a crash) gives no statuses; a command that is not pytest (django's
    and sympy's runners) is read from its log with the spec's parser.
    """
    spec = spec or spec_for(task)
    command = test_command(task, spec)
    name = f"oec-pytest-report-{uuid.uuid4().hex}.jsonl"
    report_path = session.stage_file(name, b"")
    script = "\n".join([*_setup(session, spec), plugin_env_script(report_path, session.pytest_plugin_dir),
                        _TEST_ENV, command])
    run = session.run(script)
    report = parse_report(session.read_staged(name, limit=MAX_REPORT_BYTES))
    if report.complete:
        single = not task.test_cmd and spec.source == "default"
        if single and run.exit_code is not None and report.exit_statuses[-1] != run.exit_code:
            why = f"pytest exited {run.exit_code} but reported {report.exit_statuses[-1]}: the run was tampered with"
            return TestRun(run, {}, "report", ("unresolved", why))
        return TestRun(run, report.statuses, "report")
    if report.sessions:
        why = "pytest started but never reported its end (os._exit, a crash or a kill): no status is trusted"
        return TestRun(run, {}, "report", ("unresolved", why))
    if spec.log_parser == "pytest" and _RUNS_PYTEST.search(command):
        return TestRun(run, {}, None, ("error", "pytest wrote no report: did it start? (see the log excerpt)"))
    return TestRun(run, parse_log(run.output, spec.log_parser), "log")


_base_cache: dict[str, dict[str, TestStatus]] = {}
_base_lock = threading.Lock()


def _base_key(task: Task) -> str:
    parts = [task.instance_id, task.repo, task.base_commit or "", task.patch if task.bug_shaped else "",
             task.test_patch, task.test_cmd or "", task.python_env or "", task.image_name or ""]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def base_statuses(task: Task, open_env) -> dict[str, TestStatus]:
    """The deciding tests' statuses at the base (test_patch applied, nothing else); run once per task."""
    key = _base_key(task)
    with _base_lock:
        if key in _base_cache:
            return _base_cache[key]
    with open_env() as session:
        applied = apply_patch(session, task.test_patch)
        statuses = run_tests(session, task).statuses if applied.ok else {}
    matched = match_statuses(task.FAIL_TO_PASS + task.PASS_TO_PASS, statuses, spec_for(task).id_rules)
    with _base_lock:
        _base_cache[key] = matched
    return matched


def grade(
    task: Task,
    patch: str,
    repos: RepoIndex,
    *,
    limits: SandboxLimits = GRADING_LIMITS,
    isolation: Isolation = "auto",
    work_root: Path | None = None,
    env: EnvBackend = "local",
) -> GradeResult:
    """Grade `patch` for `task` in a fresh environment; failures to apply are graded failures, not crashes."""
    started = time.monotonic()
    result = GradeResult(instance_id=task.instance_id, resolved=False, status="error")

    def open_env() -> EnvSession | DockerSession:
        return open_session(task, repos, backend=env, limits=limits, isolation=isolation, work_root=work_root,
                            label=f"grade-{task.instance_id}", purpose="grading")

    try:
        verdict = screen(patch, task)
        result.dropped = verdict.dropped
        if verdict.refused:
            result.status, result.reason = "patch_refused", f"patch refused ({verdict.refused})"
            return result
        with open_env() as session:
            applied, tests_applied = apply_for_grading(session, verdict.patch, task.test_patch)
            result.apply_method = applied.method
            if not applied.ok:
                result.status, result.reason = "patch_failed", "patch does not apply:\n" + applied.log[-2000:]
                return result
            if tests_applied is None or not tests_applied.ok:
                log = tests_applied.log[-2000:] if tests_applied else ""
                result.status, result.reason = "test_patch_failed", "test_patch does not apply:\n" + log
                return result
            spec = spec_for(task)
            result.test_cmd = test_command(task, spec)
            tested = run_tests(session, task, spec)
        result.log_excerpt, result.status_source = tested.run.output[-LOG_EXCERPT_CHARS:], tested.source
        if tested.run.timed_out:
            result.status, result.reason = "timeout", f"tests ran past {limits.timeout_s:.0f}s"
            return result
        if tested.problem:
            result.status, result.reason = tested.problem
            return result
        deciding = task.FAIL_TO_PASS + task.PASS_TO_PASS
        xfailed = [t for t, status in match_statuses(deciding, tested.statuses, spec.id_rules).items()
                   if status == TestStatus.XFAIL]
        at_base = base_statuses(task, open_env) if xfailed else {}
        xfail_at_base = {t for t in xfailed if at_base.get(t) == TestStatus.XFAIL}
        resolved, result.tests, result.fail_to_pass, result.pass_to_pass = decide(
            task, tested.statuses, xfail_at_base=xfail_at_base, id_rules=spec.id_rules)
        result.resolved = resolved
        result.status = "resolved" if resolved else "unresolved"
        if not resolved:
            failing = result.fail_to_pass.failure + result.pass_to_pass.failure
            marked = [t for t in failing if t in xfailed]
            result.reason = f"{len(failing)} deciding test(s) not passing: " + ", ".join(failing[:5])
            if marked:
                result.reason += f"; XFAIL now but not at the base: {', '.join(marked[:5])}"
        return result
    except Exception as exc:  # a broken repo or environment is this task's failure, not the run's
        result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"
        return result
    finally:
        result.duration_s = round(time.monotonic() - started, 3)
