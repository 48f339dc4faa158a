"""Does a candidate bug make a task? Tests run in oec's sandbox, at the clean commit and with the bug.

As SWE-smith validates: the clean commit's tests run twice (a test whose
status differs between the two runs is flaky and never decides anything;
a test not passing at the clean commit is left out), then each candidate's
tests run in a fresh workspace of the clean commit with the candidate's file
written over the clean one. FAIL_TO_PASS = the clean-passing tests that do
not pass with the bug; PASS_TO_PASS = those still passing. The sandbox, the
report plugin and the statuses are the grader's own (`open_session`,
`run_tests`), so a task is validated exactly as it will be graded.

A candidate is dropped, with the reason counted, when:
`import_error` (a test file no longer collects: the module does not import),
`breaks_all_tests` (no clean-passing test passes any more), `no_failure`
(every test still passes), `only_flaky` (only flaky tests changed),
`timeout` (the tests ran past the limit: an endless loop), `tests_crashed`
(pytest never reported its end).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from oec.env.repos import RepoIndex
from oec.env.sandbox import SandboxLimits
from oec.env.session import Isolation, open_session
from oec.grading.grader import run_tests
from oec.grading.log_parsers import PASSING, TestStatus, strip_colour, strip_message
from oec.tasks.model import Task

__all__ = ["DROP_REASONS", "Baseline", "Outcome", "classify", "clean_baseline", "failure_messages", "run_candidate"]

DROP_REASONS = ("import_error", "breaks_all_tests", "no_failure", "only_flaky", "timeout", "tests_crashed")
#: default per-run limits; a candidate's timeout is set from the clean run's duration
VALIDATION_LIMITS = SandboxLimits(timeout_s=600.0, output_bytes=4_000_000, memory_mb=4096, max_processes=256)
_SUMMARY_LINE = re.compile(r"^(FAILED|ERROR) (?P<rest>.+)$")


@dataclass
class Baseline:
    """The clean commit's tests: who passes (twice), who is flaky, how long a run takes."""

    commit: str
    test_cmd: str
    passing: list[str]
    flaky: list[str]
    failing: list[str]
    duration_s: float

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Baseline | None":
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


@dataclass
class Outcome:
    """What validation decided for one candidate (one line of the state file)."""

    id: str
    status: str                                   # "valid" or a DROP_REASONS entry
    kind: str = ""
    path: str = ""
    function: str = ""
    line: int = 0
    lines_changed: int = 0
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)   # failing test -> its one-line failure message
    duration_s: float = 0.0
    detail: str = ""


def _probe_task(repo: str, commit: str, test_cmd: str, python_env: str | None) -> Task:
    # a wide "terminal", so pytest's short summary keeps each failure's message whole
    return Task(instance_id="oec-synth-probe", repo=repo, base_commit=commit, problem_statement="",
                test_cmd=f"export COLUMNS=400\n{test_cmd}", python_env=python_env)


def _run(task: Task, repos: RepoIndex, *, limits: SandboxLimits, isolation: Isolation, work_root: Path | None,
         files: dict[str, str] | None = None):
    with open_session(task, repos, limits=limits, isolation=isolation, work_root=work_root,
                      label="synth", purpose="grading") as session:
        for rel, content in (files or {}).items():
            target = session.path / rel
            if target.is_symlink() or not target.is_file():
                raise ValueError(f"{rel} is not a regular file of the clean commit")
            target.write_text(content, encoding="utf-8")
        started = time.monotonic()
        tested = run_tests(session, task)
        return tested, time.monotonic() - started


def clean_baseline(repo: str, commit: str, test_cmd: str, repos: RepoIndex, *, cache: Path,
                   python_env: str | None = None, isolation: Isolation = "auto",
                   work_root: Path | None = None) -> Baseline:
    """The clean commit's test statuses from two runs (cached in `cache`, keyed by commit and command)."""
    key = hashlib.sha256(f"{commit}\0{test_cmd}\0{python_env or ''}".encode()).hexdigest()[:16]
    path = cache / f"baseline-{key}.json"
    cached = Baseline.load(path)
    if cached is not None:
        return cached
    task = _probe_task(repo, commit, test_cmd, python_env)
    runs = []
    for _ in range(2):
        tested, duration = _run(task, repos, limits=VALIDATION_LIMITS, isolation=isolation, work_root=work_root)
        if tested.problem or tested.run.timed_out or not tested.statuses:
            why = tested.problem[1] if tested.problem else ("timed out" if tested.run.timed_out else "no test ran")
            raise RuntimeError(f"the tests of {repo} at {commit[:12]} did not run cleanly ({why}); "
                               f"command: {test_cmd}\n{tested.run.output[-1500:]}")
        runs.append((tested.statuses, duration))
    (first, d1), (second, d2) = runs
    ids = sorted(set(first) | set(second))
    flaky = [t for t in ids if first.get(t) != second.get(t)]
    passing = [t for t in ids if t not in flaky and first[t] in PASSING]
    failing = [t for t in ids if t not in flaky and first[t] not in PASSING]
    if not passing:
        raise RuntimeError(f"no test of {repo} passes at {commit[:12]} (command: {test_cmd})")
    baseline = Baseline(commit, test_cmd, passing, flaky, failing, round(max(d1, d2), 3))
    baseline.save(path)
    return baseline


def failure_messages(log: str, tests: list[str]) -> dict[str, str]:
    """Each failing test's message from pytest's short summary (`FAILED id - message`), where it printed one."""
    wanted = set(tests)
    found: dict[str, str] = {}
    for line in strip_colour(log).splitlines():
        match = _SUMMARY_LINE.match(line.strip())
        if not match:
            continue
        rest = match["rest"]
        test_id = strip_message(rest)
        if test_id in wanted and test_id not in found:
            message = rest[len(test_id):].removeprefix(" - ").strip()
            found[test_id] = message[:300]
    return found


def classify(baseline: Baseline, statuses: dict[str, TestStatus]) -> tuple[str, list[str], list[str], str]:
    """(status, FAIL_TO_PASS, PASS_TO_PASS, detail) from the bug's statuses against the clean baseline."""
    collect_errors = sorted(t for t, s in statuses.items() if "::" not in t and s == TestStatus.ERROR)
    if collect_errors:
        return "import_error", [], [], "does not collect: " + ", ".join(collect_errors[:3])
    flaky = set(baseline.flaky)
    deciding = [t for t in baseline.passing if t not in flaky]
    f2p = [t for t in deciding if statuses.get(t) not in PASSING]
    p2p = [t for t in deciding if statuses.get(t) == TestStatus.PASSED]
    if deciding and len(f2p) == len(deciding):
        return "breaks_all_tests", [], [], f"all {len(deciding)} passing tests fail"
    if not f2p:
        changed = [t for t in baseline.flaky if statuses.get(t) not in PASSING]
        return ("only_flaky" if changed else "no_failure"), [], [], ""
    return "valid", f2p, p2p, ""


def run_candidate(candidate, baseline: Baseline, repo: str, repos: RepoIndex, *, python_env: str | None = None,
                  isolation: Isolation = "auto", work_root: Path | None = None,
                  timeout_s: float | None = None) -> Outcome:
    """Run the tests with `candidate`'s file in place and decide (never raises for the candidate's faults)."""
    timeout = timeout_s or max(10.0, 10 * baseline.duration_s)
    limits = SandboxLimits(timeout_s=timeout, output_bytes=VALIDATION_LIMITS.output_bytes,
                    memory_mb=VALIDATION_LIMITS.memory_mb, max_processes=VALIDATION_LIMITS.max_processes)
    outcome = Outcome(id=candidate.id, status="tests_crashed", kind=candidate.kind, path=candidate.path,
                      function=candidate.function, line=candidate.line, lines_changed=candidate.lines_changed)
    started = time.monotonic()
    task = _probe_task(repo, baseline.commit, baseline.test_cmd, python_env)
    try:
        tested, _ = _run(task, repos, limits=limits, isolation=isolation, work_root=work_root,
                         files={candidate.path: candidate.content})
    except Exception as exc:  # a sandbox or workspace failure: this candidate's, the run goes on
        outcome.detail = f"{type(exc).__name__}: {exc}"[:500]
        outcome.duration_s = round(time.monotonic() - started, 3)
        return outcome
    outcome.duration_s = round(time.monotonic() - started, 3)
    if tested.run.timed_out:
        outcome.status, outcome.detail = "timeout", f"tests ran past {timeout:.0f}s"
        return outcome
    if tested.problem:
        outcome.detail = tested.problem[1][:500]
        return outcome
    status, f2p, p2p, detail = classify(baseline, tested.statuses)
    outcome.status, outcome.detail = status, detail
    if status == "valid":
        outcome.fail_to_pass, outcome.pass_to_pass = f2p, p2p
        outcome.messages = failure_messages(tested.run.output, f2p)
    return outcome
