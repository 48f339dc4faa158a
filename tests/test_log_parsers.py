"""pytest -rA logs parse to per-test statuses, as SWE-bench's harness reads them."""

import pytest

from oec.grading.log_parsers import TestStatus, parse_log, parse_pytest_log
from oec.grading.patch_files import files_touched
from oec.grading.test_ids import match_statuses

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


def test_pytest_summary_only_colour_subtests_and_captured_prints() -> None:
    """A passing test that prints "FAILED x" does not fail x; colour codes are dropped; SUBFAILED fails its test."""
    log = (
        "============================= test session starts ==============================\n"
        "collected 4 items\n\n"
        "tests/test_x.py ..F.                                                     [100%]\n\n"
        "==================================== PASSES ====================================\n"
        "__________________________________ test_pass ___________________________________\n"
        "----------------------------- Captured stdout call -----------------------------\n"
        "FAILED tests/test_x.py::test_other printed by a passing test\n"
        "PASSED tests/test_x.py::test_broken\n"
        "=========================== short test summary info ============================\n"
        "\x1b[32mPASSED\x1b[0m tests/test_x.py::\x1b[1mtest_pass\x1b[0m\n"
        "PASSED tests/test_x.py::test_other\n"
        "PASSED tests/test_x.py::T::test_sub\n"
        "\x1b[31mFAILED\x1b[0m tests/test_x.py::\x1b[1mtest_broken\x1b[0m - assert 1 == 2\n"
        "SUBFAILED(i=1) tests/test_x.py::T::test_sub - AssertionError: 1 == 1\n"
        "XPASS tests/test_x.py::test_lucky\n"
        "===== 2 failed, 3 passed in 0.02s =====\n")
    assert parse_pytest_log(log) == {
        "tests/test_x.py::test_pass": TestStatus.PASSED, "tests/test_x.py::test_other": TestStatus.PASSED,
        "tests/test_x.py::T::test_sub": TestStatus.FAILED, "tests/test_x.py::test_broken": TestStatus.FAILED,
        "tests/test_x.py::test_lucky": TestStatus.XPASS}


def test_pytest_verbose_and_xdist_progress_lines() -> None:
    """SWE-smith runs `pytest --verbose --tb=no` (no -rA): the progress lines are the results."""
    log = (
        "============================= test session starts ==============================\n"
        "tests/test_a.py::test_one PASSED                                         [ 25%]\n"
        "tests/test_a.py::test_param[log(photon energy)] FAILED                   [ 50%]\n"
        "tests/test_a.py::test_skip SKIPPED (no network)                          [ 75%]\n"
        "[gw1] [100%] PASSED tests/test_b.py::test_two \n"
        "=========================== short test summary info ============================\n"
        "FAILED tests/test_a.py::test_param[log(photon energy)] - AssertionError: asse...\n"
        "========================= 1 failed, 2 passed in 0.05s =========================\n")
    assert parse_pytest_log(log) == {
        "tests/test_a.py::test_one": TestStatus.PASSED,
        "tests/test_a.py::test_param[log(photon energy)]": TestStatus.FAILED,
        "tests/test_a.py::test_skip": TestStatus.SKIPPED, "tests/test_b.py::test_two": TestStatus.PASSED}


DJANGO_LOG = """\
Testing against Django installed in '/testbed/django'
Importing application auth_tests
Operations to perform:
  Apply all migrations: admin, sites
Running migrations:
  Applying admin.0001_initial... OK
System check identified no issues (0 silenced).
test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests) ... ok
test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests) ... FAIL
test_help_text (auth_tests.test_validators.UserAttributeSimilarityValidatorTest) ... ERROR
test_validate (auth_tests.test_validators.CommonPasswordValidatorTest) ... skipped 'needs sqlite'
test_html (auth_tests.test_validators.PasswordValidationTest)
Password validators' help_text_html doesn't crash ... ok
test_middleware (auth_tests.test_views.LoginTest) ... Internal Server Error: /login/
ok
test_known (auth_tests.test_views.LoginTest) ... expected failure

======================================================================
FAIL: test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests)
----------------------------------------------------------------------
Traceback (most recent call last):
AssertionError: ValidationError not raised

----------------------------------------------------------------------
Ran 7 tests in 0.012s

FAILED (failures=1, errors=1, skipped=1, expected failures=1)
"""


def test_django_runner_log() -> None:
    statuses = parse_log(DJANGO_LOG, "django")
    assert statuses == {
        "test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)": TestStatus.PASSED,
        "test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests)": TestStatus.FAILED,
        "test_help_text (auth_tests.test_validators.UserAttributeSimilarityValidatorTest)": TestStatus.ERROR,
        "test_validate (auth_tests.test_validators.CommonPasswordValidatorTest)": TestStatus.SKIPPED,
        # a docstring: SWE-bench keys the test by its first line, and so does oec, besides its name
        "Password validators' help_text_html doesn't crash": TestStatus.PASSED,
        "test_html (auth_tests.test_validators.PasswordValidationTest)": TestStatus.PASSED,
        "test_middleware (auth_tests.test_views.LoginTest)": TestStatus.PASSED,  # output before the result
        "test_known (auth_tests.test_views.LoginTest)": TestStatus.XFAIL,
        "test_unicode_validator": TestStatus.FAILED,  # the FAIL: header, keyed by the bare name as SWE-bench does
    }


SYMPY_LOG = """\
============================= test process starts ==============================
executable:         /opt/miniconda3/envs/testbed/bin/python  (3.9.19-final-0) [CPython]
random seed:        12345678

sympy/core/tests/test_basic.py[5] 
test__aresame ok
test_structure ok
test_equality F
test_known_issue f
test_matches_basic E                                                      [FAIL]

________________________________________________________________________________
_____________ sympy/core/tests/test_basic.py:test_equality ______________________
Traceback (most recent call last):
AssertionError
=========== tests finished: 2 passed, 1 failed, 1 expected to fail, 1 exceptions, in 0.05 seconds ===========
DO *NOT* COMMIT!
"""


def test_sympy_runner_log() -> None:
    assert parse_log(SYMPY_LOG, "sympy") == {
        "test__aresame": TestStatus.PASSED, "test_structure": TestStatus.PASSED,
        "test_equality": TestStatus.FAILED, "test_known_issue": TestStatus.XFAIL,
        "test_matches_basic": TestStatus.ERROR}


def test_unittest_log_of_python_3_11_with_a_failing_subtest() -> None:
    log = ("test_err (test_u.T.test_err) ... ERROR\n"
           "test_sub (test_u.T.test_sub) ... \n"
           "  test_sub (test_u.T.test_sub) (i=1) ... FAIL\n"
           "test_xp (test_u.T.test_xp) ... unexpected success\n"
           "test_ok (test_u.T.test_ok) ... ok\n\n"
           "======================================================================\n"
           "FAIL: test_sub (test_u.T.test_sub) (i=1)\n")
    statuses = parse_log(log, "unittest")
    assert statuses["test_sub (test_u.T.test_sub)"] is TestStatus.FAILED
    assert statuses["test_err (test_u.T.test_err)"] is TestStatus.ERROR
    assert statuses["test_xp (test_u.T.test_xp)"] is TestStatus.FAILED  # unittest fails the run on it
    assert statuses["test_ok (test_u.T.test_ok)"] is TestStatus.PASSED
    with pytest.raises(ValueError, match="no log parser named 'nose'"):
        parse_log("", "nose")


def test_listed_ids_match_reported_ones_through_their_parsers_bends() -> None:
    reported = {"tests/t.py::test_x[log(photon energy)]": TestStatus.PASSED,
                "tests/t.py::test_y[a b]": TestStatus.PASSED, "tests/t.py::test_y[a c]": TestStatus.FAILED,
                "tests/t.py::test_p[/tmp/pytest-0/data.txt]": TestStatus.PASSED,
                "lib/t.py::test_click[MouseButton.LEFT-x]": TestStatus.PASSED}
    listed = ["tests/t.py::test_x[log(photon", "tests/t.py::test_y[a", "tests/t.py::test_p[/data.txt]",
              "lib/t.py::test_click[1-x]", "tests/t.py::test_missing"]
    assert match_statuses(listed, reported) == {"tests/t.py::test_x[log(photon": TestStatus.PASSED,
                                                "tests/t.py::test_y[a": TestStatus.FAILED}  # all behind it must pass
    assert match_statuses(listed, reported, ("option-paths",))["tests/t.py::test_p[/data.txt]"] is TestStatus.PASSED
    assert match_statuses(listed, reported, ("mouse-buttons",))["lib/t.py::test_click[1-x]"] is TestStatus.PASSED
    assert "tests/t.py::test_missing" not in match_statuses(listed, reported, ("cut-at-space", "option-paths"))
