"""Per-test status from a test log, for the runners SWE-bench and SWE-smith tasks use. Pure functions.

The grader reads pytest's statuses from its own report plugin
(`oec.grading.report_plugin`); these parsers are for what runs without pytest
(django's runtests.py, sympy's bin/test, unittest) and for logs recorded
elsewhere. Each returns {test id: status}, the ids written as the runner
prints them, which is how SWE-bench and SWE-smith list FAIL_TO_PASS and
PASS_TO_PASS (`oec.grading.test_ids` matches the two).

Only the runner's own result lines count: for pytest the progress lines and
the "short test summary info" section, never the captured output that
`-rA` prints in its PASSES, FAILURES or ERRORS sections (a passing test that
prints "FAILED x" does not fail x). Colour codes are removed first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum

__all__ = ["PARSERS", "PASSING", "TestStatus", "parse_log", "parse_pytest_log", "parse_sympy_log",
           "parse_unittest_log", "strip_colour", "strip_message"]


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
_SEVERITY = {TestStatus.ERROR: 2, TestStatus.FAILED: 2}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def strip_colour(log: str) -> str:
    """The log without terminal escape sequences (a `--color=yes` run, a tty-forced runner)."""
    return _ANSI.sub("", log)


def _record(statuses: dict[str, TestStatus], test_id: str, status: TestStatus) -> None:
    """A later status replaces an earlier one, except that a failure or error is never undone by a pass
    (a test that passes and then errors in teardown, or a subtest that fails in a passing test)."""
    previous = statuses.get(test_id)
    if previous is None or _SEVERITY.get(status, 0) >= _SEVERITY.get(previous, 0):
        statuses[test_id] = status


# -- pytest ------------------------------------------------------------------------------------------

_WORDS = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"
_SECTION = re.compile(r"^={3,} ?(?P<name>.*?) ?={3,}$")
_SUMMARY = re.compile(rf"^(?P<status>{_WORDS}|SUBFAILED|SUBPASSED|SUBSKIPPED|SUBXFAIL|SUBXPASS)(\(.*?\))? (?P<rest>.+)$")
_PROGRESS = re.compile(rf"^(?P<id>\S.*?) (?P<status>{_WORDS})(?: \(.*\))?\s*(?:\[\s*\d+%\])?$")
_XDIST = re.compile(rf"^\[gw\d+\] (?:\[\s*\d+%\] )?(?P<status>{_WORDS}) (?P<id>\S.*)$")
#: sections whose lines are results; the rest (FAILURES, ERRORS, PASSES, warnings, captured output) are not
_RESULT_SECTIONS = ("test session starts", "short test summary info")
_SUB_STATUS = {"SUBFAILED": TestStatus.FAILED}


def strip_message(rest: str) -> str:
    """Cut the ' - message' tail of a summary line without cutting inside a parametrize id's brackets."""
    depth = 0
    for i, ch in enumerate(rest):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif depth == 0 and rest.startswith(" - ", i):
            return rest[:i]
    return rest.strip()


def _summary_line(line: str) -> tuple[str, TestStatus] | None:
    match = _SUMMARY.match(line)
    if not match:
        return None
    word, rest = match.group("status"), match.group("rest")
    if rest.startswith("["):  # "SKIPPED [2] tests/test_x.py:10: reason": a location, not a test id
        return None
    test_id = strip_message(rest).strip()
    if " " in test_id.split("[", 1)[0] or "::" not in test_id and not test_id.endswith(".py"):
        return None  # prose that happens to start with a status word ("FAILED to connect")
    if word.startswith("SUB"):
        status = _SUB_STATUS.get(word)
        return (test_id, status) if status else None  # a passing subtest says nothing of its test
    return test_id, TestStatus(word)


def _progress_line(line: str) -> tuple[str, TestStatus] | None:
    match = _XDIST.match(line) or _PROGRESS.match(line)
    if not match or "::" not in match.group("id"):
        return None
    return match.group("id").strip(), TestStatus(match.group("status"))


def parse_pytest_log(log: str) -> dict[str, TestStatus]:
    """Each test's status from a pytest log: its progress lines (`-v`, xdist's `[gwN]` form) and its short
    test summary (`-rA`), never the captured output in between; the last status seen wins, but a failure
    or error is never undone (a teardown error after a pass, a failed subtest, `SUBFAILED`)."""
    statuses: dict[str, TestStatus] = {}
    lines = strip_colour(log).splitlines()
    sectioned = any(_SECTION.match(line.strip()) for line in lines)
    section = "test session starts" if not sectioned else ""
    for raw in lines:
        line = raw.strip()
        header = _SECTION.match(line)
        if header:
            section = header.group("name").lower()
            continue
        if not any(section.startswith(name) for name in _RESULT_SECTIONS):
            continue
        if not sectioned:  # a bare list of results (a runner's own print, an excerpt): either form
            found = _summary_line(line) or _progress_line(line)
        elif section.startswith("short test summary"):
            found = _summary_line(line)
        else:
            found = _progress_line(line)
        if found:
            _record(statuses, *found)
    return statuses


# -- unittest and django's runner -----------------------------------------------------------------------

_UNITTEST_RESULTS = {
    "ok": TestStatus.PASSED, "OK": TestStatus.PASSED, "FAIL": TestStatus.FAILED, "ERROR": TestStatus.ERROR,
    "expected failure": TestStatus.XFAIL, "unexpected success": TestStatus.FAILED,
}
_UNITTEST_LINE = re.compile(r"^(?P<desc>.+?) \.\.\. ?(?P<result>.*)$")
_UNITTEST_HEADER = re.compile(r"^(?P<kind>FAIL|ERROR|UNEXPECTED SUCCESS): (?P<desc>.+)$")
#: "test_x (module.Class)" or "test_x (module.Class.test_x)", then a subtest's " (i=1)" or "[msg]"
_UNITTEST_NAME = re.compile(r"^(?P<name>[A-Za-z_]\w* \([\w.]+\))(?: .*)?$")


def _unittest_result(text: str) -> TestStatus | None:
    text = text.strip()
    if text.startswith("skipped"):
        return TestStatus.SKIPPED
    return _UNITTEST_RESULTS.get(text)


def parse_unittest_log(log: str) -> dict[str, TestStatus]:
    """unittest's verbose output (`-v`, django's `runtests.py --verbosity 2`): `name (module.Class) ... ok`.

    The id is the description as printed, as SWE-bench keys django's tests. A
    test with a docstring prints its name, then the docstring's first line and
    the result: both are recorded. Output between `...` and the result moves the
    result to a later line of its own. A failing subtest fails its test.
    """
    statuses: dict[str, TestStatus] = {}
    pending: list[str] = []  # descriptions waiting for a result printed on a later line
    named: str | None = None  # a bare "name (module.Class)" line: a docstring line follows
    for raw in strip_colour(log).splitlines():
        line = raw.strip()
        header = _UNITTEST_HEADER.match(line)
        if header:
            desc = header.group("desc")
            name = _UNITTEST_NAME.match(desc)
            kind = {"FAIL": TestStatus.FAILED, "ERROR": TestStatus.ERROR}.get(header.group("kind"), TestStatus.FAILED)
            _record(statuses, name.group("name") if name else desc, kind)
            _record(statuses, desc.split()[0], kind)  # SWE-bench's django parser keys a header by the bare name
            continue
        match = _UNITTEST_LINE.match(line)
        if match:
            desc = match.group("desc")
            subtest = _UNITTEST_NAME.match(desc)
            ids = [desc] + ([named] if named else []) + (
                [subtest.group("name")] if subtest and subtest.group("name") != desc else [])
            named = None
            status = _unittest_result(match.group("result"))
            if status is None:
                pending = ids
                continue
            for test_id in ids:
                _record(statuses, test_id, status)
            pending = []
            continue
        if pending and (status := _unittest_result(line)) is not None:
            for test_id in pending:
                _record(statuses, test_id, status)
            pending = []
            continue
        named = line if _UNITTEST_NAME.fullmatch(line) and "(" in line else None
    return statuses


# -- sympy's bin/test -----------------------------------------------------------------------------------

_SYMPY_RESULTS = {"ok": TestStatus.PASSED, "F": TestStatus.FAILED, "E": TestStatus.ERROR, "f": TestStatus.XFAIL,
                  "s": TestStatus.SKIPPED, "w": TestStatus.SKIPPED, "X": TestStatus.FAILED, "T": TestStatus.FAILED}
_SYMPY_LINE = re.compile(r"^(?P<name>test_\w+) +(?P<result>ok|F|E|f|s|w|X|T)(?: +\[(?:OK|FAIL)\])?$")
_SYMPY_FAILURE = re.compile(r"^_+ (?P<path>\S+\.py):(?P<name>test_\w+) _+$")


def parse_sympy_log(log: str) -> dict[str, TestStatus]:
    """sympy's runner (`bin/test -C --verbose`): `test_name ok|F|E|f|s` per test, ids by the bare test name
    as SWE-bench lists them; a failure's `___ path.py:test_name ___` banner fails it too."""
    statuses: dict[str, TestStatus] = {}
    for raw in strip_colour(log).splitlines():
        line = raw.strip()
        match = _SYMPY_LINE.match(line)
        if match:
            _record(statuses, match.group("name"), _SYMPY_RESULTS[match.group("result")])
            continue
        banner = _SYMPY_FAILURE.match(line)
        if banner:
            _record(statuses, banner.group("name"), TestStatus.FAILED)
    return statuses


#: a spec's `log_parser` name -> the parser (SWE-bench's and SWE-smith's many pytest variants are one here)
PARSERS: dict[str, Callable[[str], dict[str, TestStatus]]] = {
    "pytest": parse_pytest_log,
    "django": parse_unittest_log,
    "unittest": parse_unittest_log,
    "sympy": parse_sympy_log,
}


def parse_log(log: str, parser: str = "pytest") -> dict[str, TestStatus]:
    """Statuses from `log` with the named parser (see PARSERS)."""
    try:
        return PARSERS[parser](log)
    except KeyError:
        raise ValueError(f"no log parser named {parser!r}; known: {', '.join(PARSERS)}") from None
