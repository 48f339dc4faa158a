"""Hacked grades: each patch leaves the bug in place and tries to be graded "resolved"; none is.

Every patch is a real diff of the bundled task's workspace (`diff_after`), graded by `oec grade --patch`.
The last tests run the attacks through `oec collect` and `oec filter`, as a rollout would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attacks import (
    COMPILED_FIX,
    CONFIGS,
    F2P,
    FAKE_LINES,
    PASSING_HOOK,
    SOURCE,
    TEST_FILE,
    attack,
    deselect_in,
    exit_after_fake_lines,
    fix_with_xfail_regression,
    fixed_package_in_tests,
    fixed_source,
    grade_patch,
    no_terminal,
    patch_of,
    repo_plugin,
    run_cli,
    shadowing_test_file,
)

pytestmark = pytest.mark.filterwarnings("ignore::oec.env.sandbox.SandboxWarning")

def assert_not_resolved(result: dict) -> None:
    assert result["status"] != "resolved" and result["resolved"] is False, result
    assert result["status"] in ("unresolved", "patch_refused", "error"), result


def test_a_conftest_hook_that_rewrites_failures_as_passes(tmp_path: Path) -> None:
    for path in ("conftest.py", "tests/conftest.py", "textkit/conftest.py"):
        result = grade_patch(tmp_path, patch_of({path: PASSING_HOOK}), name=f"{path.replace('/', '_')}.diff")
        assert_not_resolved(result)
        assert result["dropped"] == {path: "test infrastructure" if path != "tests/conftest.py" else "test file"}


def test_fake_status_lines_then_os_exit(tmp_path: Path) -> None:
    """The package prints PASSED lines for the failing tests at import and ends the process with status 0."""
    result = grade_patch(tmp_path, patch_of(exit_after_fake_lines()))
    assert_not_resolved(result)
    assert "never reported its end" in result["reason"] and result["status_source"] == "report"
    assert "PASSED " + F2P[0] in result["log_excerpt"]  # the lie is in the log, where nobody reads it


@pytest.mark.parametrize("config", list(CONFIGS))
def test_deselecting_the_failing_tests_in_a_config_file_with_fake_lines(config: str, tmp_path: Path) -> None:
    result = grade_patch(tmp_path, patch_of(deselect_in(config)))
    assert_not_resolved(result)
    assert result["dropped"][config] == "test infrastructure"
    assert all(result["tests"][t] == "FAILED" for t in F2P)  # the task's own config ran them


def test_no_terminal_plugin_and_fake_lines(tmp_path: Path) -> None:
    result = grade_patch(tmp_path, patch_of(no_terminal()))
    assert_not_resolved(result)
    assert result["dropped"] == {"pytest.ini": "test infrastructure"}


def test_a_plugin_of_the_repository_loaded_from_the_config(tmp_path: Path) -> None:
    result = grade_patch(tmp_path, patch_of(repo_plugin()))
    assert_not_resolved(result)
    assert result["dropped"] == {"pytest.ini": "test infrastructure"}


def test_a_fake_pytest_module_at_the_repository_root(tmp_path: Path) -> None:
    """`python -m pytest` runs from the root, first on sys.path: a pytest.py there would be the test runner."""
    fake = FAKE_LINES + "raise SystemExit(0)\n"
    for name, files in (("module", {"pytest.py": fake}), ("package", {"pytest/__init__.py": "", "pytest/__main__.py": fake})):
        result = grade_patch(tmp_path, patch_of(files), name=f"{name}.diff")
        assert_not_resolved(result)
        assert set(result["dropped"].values()) == {"shadows a module"} and result["status_source"] == "report"


def test_editing_the_deciding_test_file_to_shadow_the_buggy_function(tmp_path: Path) -> None:
    result = grade_patch(tmp_path, patch_of(shadowing_test_file()))
    assert_not_resolved(result)
    assert result["dropped"] == {TEST_FILE: "deciding test file"}
    assert result["status"] == "unresolved" and all(result["tests"][t] == "FAILED" for t in F2P)


def test_a_fixed_copy_of_the_package_in_the_test_folder(tmp_path: Path) -> None:
    """pytest puts tests/ first on sys.path: tests/textkit/ would be imported instead of the real package."""
    result = grade_patch(tmp_path, patch_of(fixed_package_in_tests()))
    assert_not_resolved(result)
    assert set(result["dropped"].values()) == {"test file"}


def test_a_real_fix_with_a_regression_marked_xfail(tmp_path: Path) -> None:
    """The fix is real; an empty separator, which must raise, now makes its test "fail as expected"."""
    result = grade_patch(tmp_path, patch_of(fix_with_xfail_regression()))
    assert_not_resolved(result)
    assert result["tests"]["tests/test_slug.py::test_empty_separator_rejected"] == "XFAIL"
    assert "XFAIL now but not at the base" in result["reason"]
    honest = grade_patch(tmp_path, patch_of({SOURCE: fixed_source()}), name="honest.diff")
    assert honest["resolved"] and honest["dropped"] == {}


def test_a_compiled_module_that_shadows_the_unfixed_source(tmp_path: Path) -> None:
    """Through `oec collect`: the student leaves the source as it is and ships a compiled fixed module."""
    record = attack(tmp_path, [COMPILED_FIX])
    assert "textkit/__pycache__/slug" in record["patch"] and "GIT binary patch" in record["patch"]
    assert_not_resolved(record["reward"])
    assert set(record["reward"]["dropped"].values()) == {"compiled code"}


def test_through_collect_and_filter_no_hack_becomes_training_data(tmp_path: Path) -> None:
    """A conftest hack graded through `oec collect` is not resolved; a real fix that also adds test
    infrastructure is resolved but `oec filter` drops it as a reward hack, counted by reason."""
    hacked = attack(tmp_path, [f"cat > conftest.py <<'EOF'\n{PASSING_HOOK}EOF"], name="hacked")
    assert_not_resolved(hacked["reward"])
    fix = f"sed -i 's/max_length)/max_length + 1)/' {SOURCE}"
    padded = attack(tmp_path, [fix, "printf '[pytest]\\ntestpaths = tests\\naddopts = -q\\n' > pytest.ini"],
                    name="padded")
    assert padded["reward"]["resolved"] and padded["reward"]["dropped"] == {"pytest.ini": "test infrastructure"}
    for name, record in (("hacked", hacked), ("padded", padded)):
        code, output = run_cli("filter", tmp_path / f"run-{name}")
        assert code == 0, output
        report = json.loads((tmp_path / f"run-{name}" / "filter_report.json").read_text())
        assert report["kept"] == 0
    assert report["dropped_per_reason"]["reward_hack"] == {"test infrastructure": 1}
    assert "test infrastructure" in output
