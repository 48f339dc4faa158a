"""Grade a patch for a task exactly as the SWE-bench harness decides "resolved".

Fresh workspace at base_commit -> apply the patch -> apply test_patch -> run
the task's tests in the sandbox -> parse per-test status from the log ->
resolved iff every FAIL_TO_PASS and every PASS_TO_PASS test passes.

`env` picks where: "local" (a workspace of the repos folder, patches applied on
the host) or "docker" (a fresh container of the task's image, patches applied
inside it, tests run after the image's setup such as SWE-bench's conda activation).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from oec.env.repos import RepoIndex
from oec.env.sandbox import Limits
from oec.env.session import EnvBackend, EnvSession, Isolation, open_session
from oec.grading.apply import ApplyResult, apply_patch, files_touched
from oec.grading.log_parsers import PASSING, parse_pytest_log
from oec.tasks.model import Task

if TYPE_CHECKING:
    from oec.env.docker_backend import DockerSession

GradeStatus = Literal["resolved", "unresolved", "patch_failed", "test_patch_failed", "timeout", "error"]

#: grading runs whole test files: generous time, and a log big enough to keep every status line
GRADING_LIMITS = Limits(timeout_s=1800.0, output_bytes=20_000_000, memory_mb=8192, max_processes=512)
LOG_EXCERPT_CHARS = 4000


class TestGroup(BaseModel):
    __test__ = False  # not a pytest test class
    success: list[str] = Field(default_factory=list)
    failure: list[str] = Field(default_factory=list)


class GradeResult(BaseModel):
    """The reward of one patch: resolved or not, why, and every deciding test's status."""

    instance_id: str
    resolved: bool
    status: GradeStatus
    reason: str | None = None
    apply_method: str | None = None
    test_cmd: str | None = None
    tests: dict[str, str] = Field(default_factory=dict, description="status of each F2P/P2P test; MISSING if not in log")
    fail_to_pass: TestGroup = Field(default_factory=TestGroup)
    pass_to_pass: TestGroup = Field(default_factory=TestGroup)
    log_excerpt: str = ""
    duration_s: float = 0.0


def default_test_command(task: Task) -> str:
    """The task's own test_cmd, else pytest -rA over the test files test_patch touches (SWE-bench's way)."""
    if task.test_cmd:
        return task.test_cmd
    files = files_touched(task.test_patch)
    if not files:  # no test_patch: the files named by the deciding test ids
        files = list(dict.fromkeys(t.split("::")[0] for t in task.FAIL_TO_PASS + task.PASS_TO_PASS if "::" in t))
    return shlex.join(["python", "-m", "pytest", "-rA", "-p", "no:cacheprovider", *files])


def decide(task: Task, statuses: dict[str, object]) -> tuple[bool, dict[str, str], TestGroup, TestGroup]:
    """Pure decision from parsed statuses: every F2P and every P2P test must pass."""
    tests: dict[str, str] = {}
    groups = []
    for ids in (task.FAIL_TO_PASS, task.PASS_TO_PASS):
        group = TestGroup()
        for test_id in ids:
            status = statuses.get(test_id)
            tests[test_id] = getattr(status, "value", "MISSING") if status is not None else "MISSING"
            (group.success if status in PASSING else group.failure).append(test_id)
        groups.append(group)
    f2p, p2p = groups
    resolved = not f2p.failure and not p2p.failure and bool(task.FAIL_TO_PASS or task.PASS_TO_PASS)
    return resolved, tests, f2p, p2p


def _apply(session: EnvSession | DockerSession, patch: str) -> ApplyResult:
    """Apply with SWE-bench's fallbacks: on the host for a local workspace, inside the container for docker."""
    if isinstance(session, EnvSession):
        return apply_patch(session.workspace, patch)
    from oec.grading.container_apply import apply_patch_in_container

    return apply_patch_in_container(session, patch)


def grade(
    task: Task,
    patch: str,
    repos: RepoIndex,
    *,
    limits: Limits = GRADING_LIMITS,
    isolation: Isolation = "auto",
    work_root: Path | None = None,
    env: EnvBackend = "local",
) -> GradeResult:
    """Grade `patch` for `task` in a fresh environment; failures to apply are graded failures, not crashes."""
    started = time.monotonic()
    result = GradeResult(instance_id=task.instance_id, resolved=False, status="error")
    try:
        with open_session(task, repos, backend=env, limits=limits, isolation=isolation, work_root=work_root,
                          label=f"grade-{task.instance_id}") as session:
            applied = _apply(session, patch)
            result.apply_method = applied.method
            if not applied.ok:
                result.status, result.reason = "patch_failed", "patch does not apply:\n" + applied.log[-2000:]
                return result
            session.checkpoint("oec: candidate patch")  # a failed test_patch resets to here
            tests_applied = _apply(session, task.test_patch)
            if not tests_applied.ok:
                result.status, result.reason = "test_patch_failed", "test_patch does not apply:\n" + tests_applied.log[-2000:]
                return result
            result.test_cmd = default_test_command(task)
            run = session.run(result.test_cmd)
            result.log_excerpt = run.output[-LOG_EXCERPT_CHARS:]
            if run.timed_out:
                result.status, result.reason = "timeout", f"tests ran past {limits.timeout_s:.0f}s"
                return result
            resolved, result.tests, result.fail_to_pass, result.pass_to_pass = decide(task, parse_pytest_log(run.output))
            result.resolved = resolved
            result.status = "resolved" if resolved else "unresolved"
            if not resolved:
                failing = result.fail_to_pass.failure + result.pass_to_pass.failure
                result.reason = f"{len(failing)} deciding test(s) not passing: " + ", ".join(failing[:5])
            return result
    except Exception as exc:  # a broken repo or environment is this task's failure, not the run's
        result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"
        return result
    finally:
        result.duration_s = round(time.monotonic() - started, 3)

