"""Per-test status from a test log. Pure functions, like SWE-bench's harness.

`pytest -rA` ends with a "short test summary info" block holding one line per
test: ``PASSED tests/test_x.py::test_a`` or ``FAILED tests/test_x.py::test_b - msg``.
"""

from __future__ import annotations

from enum import Enum


class TestStatus(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"
    XFAIL = "XFAIL"
    XPASS = "XPASS"

    __test__ = False  # not a pytest test class


#: statuses that count as passing, as in SWE-bench (xfail is an expected outcome)
PASSING = frozenset({TestStatus.PASSED, TestStatus.XFAIL})


def _strip_message(rest: str) -> str:
    """Cut the ' - message' tail of a FAILED/ERROR line without cutting inside a parametrize id."""
    depth = 0
    for i, ch in enumerate(rest):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif depth == 0 and rest.startswith(" - ", i):
            return rest[:i]
    return rest.strip()


def parse_pytest_log(log: str) -> dict[str, TestStatus]:
    """Map each test id seen in a `pytest -rA` log to its status (the last status seen wins).

    A test that errors in teardown after passing shows both PASSED and ERROR;
    ERROR/FAILED then wins, as a broken teardown breaks the test.
    """
    statuses: dict[str, TestStatus] = {}
    severity = {TestStatus.ERROR: 2, TestStatus.FAILED: 2}
    for raw in log.splitlines():
        line = raw.strip()
        for status in TestStatus:
            prefix = status.value + " "
            if not line.startswith(prefix):
                continue
            test_id = _strip_message(line[len(prefix):]).strip()
            if not test_id or " " in test_id.split("[", 1)[0]:
                break  # prose that happens to start with a status word
            previous = statuses.get(test_id)
            if previous is None or severity.get(status, 0) >= severity.get(previous, 0):
                statuses[test_id] = status
            break
    return statuses
