"""pytest -rA logs parse to per-test statuses, as SWE-bench's harness reads them."""

from oec.grading.patch_files import files_touched
from oec.grading.log_parsers import TestStatus, parse_pytest_log

LOG = """\
============================= test session starts ==============================
tests/test_a.py ..F.sx                                                      [100%]
=========================== short test summary info ============================
PASSED tests/test_a.py::test_one
PASSED tests/test_a.py::test_param[a - b]
FAILED tests/test_a.py::test_two - AssertionError: assert 1 == 2
FAILED tests/test_a.py::test_param[x] - ValueError: bad - worse
SKIPPED [1] tests/test_a.py:40: needs network
XFAIL tests/test_a.py::test_known - reason
ERROR tests/test_a.py::test_fixture - RuntimeError
PASSED tests/test_a.py::test_teardown
ERROR tests/test_a.py::test_teardown - teardown broke
FAILED to connect is not a test line
======= 2 failed, 3 passed in 0.12s ========
"""


def test_statuses_from_short_summary() -> None:
    statuses = parse_pytest_log(LOG)
    assert statuses["tests/test_a.py::test_one"] is TestStatus.PASSED
    assert statuses["tests/test_a.py::test_param[a - b]"] is TestStatus.PASSED
    assert statuses["tests/test_a.py::test_two"] is TestStatus.FAILED
    assert statuses["tests/test_a.py::test_param[x]"] is TestStatus.FAILED
    assert statuses["tests/test_a.py::test_known"] is TestStatus.XFAIL
    assert statuses["tests/test_a.py::test_fixture"] is TestStatus.ERROR
    assert statuses["tests/test_a.py::test_teardown"] is TestStatus.ERROR  # teardown error beats the pass
    assert not any(k.startswith("to connect") for k in statuses)


def test_files_touched_by_a_diff() -> None:
    patch = (
        "diff --git a/tests/test_a.py b/tests/test_a.py\n--- a/tests/test_a.py\n+++ b/tests/test_a.py\n@@ -1 +1 @@\n-x\n+y\n"
        "diff --git a/tests/test_new.py b/tests/test_new.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_new.py\n"
        "@@ -0,0 +1 @@\n+z\n"
        "diff --git a/old.py b/old.py\ndeleted file mode 100644\n--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-q\n"
    )
    assert files_touched(patch) == ["tests/test_a.py", "tests/test_new.py", "old.py"]
