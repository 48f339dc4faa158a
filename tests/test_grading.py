"""Grading decides resolved as SWE-bench does, for the bundled suite and for any pytest repository."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import diff_after
from typer.testing import CliRunner

from oec.cli import app
from oec.env.repos import RepoIndex, RepoNotFound
from oec.grading.grader import decide, default_test_command, grade
from oec.tasks.bundled import bundled_repos_dir, load_bundled_tasks

BUNDLED = load_bundled_tasks()


@pytest.fixture(scope="module")
def bundled_repos() -> RepoIndex:
    return RepoIndex([bundled_repos_dir()])


@pytest.mark.parametrize("task", BUNDLED, ids=lambda t: t.instance_id)
def test_bundled_gold_resolves_and_empty_does_not(task, bundled_repos: RepoIndex) -> None:
    gold = grade(task, task.patch, bundled_repos)
    assert gold.resolved, gold.reason
    assert gold.status == "resolved" and gold.apply_method == "git apply"
    assert set(gold.tests) == set(task.FAIL_TO_PASS + task.PASS_TO_PASS)
    assert all(status == "PASSED" for status in gold.tests.values())

    empty = grade(task, "", bundled_repos)
    assert not empty.resolved and empty.status == "unresolved"
    assert empty.fail_to_pass.failure  # the bug is really there at base_commit
    assert not empty.pass_to_pass.failure  # and nothing else is broken


def test_foreign_swebench_row_grades_the_same_way(swe_repo) -> None:
    repos = RepoIndex([swe_repo.repos_dir])
    gold = grade(swe_repo.task, swe_repo.task.patch, repos)
    assert gold.resolved and gold.tests == {"tests/test_calc.py::test_add": "PASSED",
                                            "tests/test_calc.py::test_mul": "PASSED"}
    empty = grade(swe_repo.task, "", repos)
    assert not empty.resolved
    assert empty.fail_to_pass.failure == ["tests/test_calc.py::test_add"]
    assert default_test_command(swe_repo.task).endswith("tests/test_calc.py")


def test_fix_that_breaks_a_pass_to_pass_test_is_not_resolved(swe_repo) -> None:
    fixes_add_breaks_mul = _rewrite(
        swe_repo, {"calc/__init__.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b\n"}
    )
    result = grade(swe_repo.task, fixes_add_breaks_mul, RepoIndex([swe_repo.repos_dir]))
    assert not result.resolved and result.status == "unresolved"
    assert result.fail_to_pass.success == ["tests/test_calc.py::test_add"]
    assert result.pass_to_pass.failure == ["tests/test_calc.py::test_mul"]
    assert "test_mul" in result.reason


def _rewrite(swe_repo, files: dict[str, str]) -> str:
    """A patch from base_commit that sets `files` to the given contents."""
    return diff_after(swe_repo.task, swe_repo.repos_dir, files)


def test_patch_that_does_not_apply_is_a_graded_failure(swe_repo) -> None:
    bad = "diff --git a/calc/__init__.py b/calc/__init__.py\n--- a/calc/__init__.py\n+++ b/calc/__init__.py\n" \
          "@@ -1,2 +1,2 @@\n def nothing_like_this():\n-    return 42\n+    return 43\n"
    result = grade(swe_repo.task, bad, RepoIndex([swe_repo.repos_dir]))
    assert not result.resolved
    assert result.status == "patch_failed"
    assert "does not apply" in result.reason and "git apply" in result.reason


def test_a_patch_whose_content_holds_conflict_markers_applies(swe_repo) -> None:
    """Markers the patch itself adds (test data of a merge tool, say) are content, not a failed merge."""
    fixed = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
    sample = '\n\nSAMPLE = """\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n"""\n'
    patch = _rewrite(swe_repo, {"calc/__init__.py": fixed + sample})
    result = grade(swe_repo.task, patch, RepoIndex([swe_repo.repos_dir]))
    assert result.resolved and result.apply_method == "git apply", result.reason


def test_missing_repo_is_a_graded_error_naming_the_fix(swe_repo, tmp_path: Path) -> None:
    result = grade(swe_repo.task, swe_repo.task.patch, RepoIndex([tmp_path / "elsewhere"]))
    assert result.status == "error" and "acme__calc" in result.reason and "--repos" in result.reason
    with pytest.raises(RepoNotFound):
        RepoIndex([tmp_path]).locate(swe_repo.task)


def test_decide_treats_missing_tests_as_failures(swe_repo) -> None:
    resolved, tests, f2p, p2p = decide(swe_repo.task, {})
    assert not resolved and set(tests.values()) == {"MISSING"}


def test_cli_grade_parquet_with_repos_and_out(swe_repo, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.parquet"
    pq.write_table(pa.Table.from_pylist([swe_repo.row]), tasks)
    out = tmp_path / "out.json"
    runner = CliRunner()
    result = runner.invoke(app, ["grade", str(tasks), "--repos", str(swe_repo.repos_dir), "--patch", "gold",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 task(s) name no python_env" in result.output  # its tests ran under oec's own interpreter: said
    (row,) = json.loads(out.read_text())
    assert row["instance_id"] == "acme__calc-1" and row["resolved"] is True
    assert row["tests"]["tests/test_calc.py::test_add"] == "PASSED"

    predictions = tmp_path / "preds.jsonl"
    predictions.write_text(json.dumps({"instance_id": "acme__calc-1", "model_name_or_path": "m",
                                       "model_patch": ""}) + "\n")
    result = runner.invoke(app, ["grade", str(tasks), "--repos", str(swe_repo.repos_dir), "--patch",
                                 str(predictions), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[0]["resolved"] is False


def test_bad_patch_input_is_a_clear_error_naming_file_and_line(swe_repo, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(swe_repo.row) + "\n")
    runner = CliRunner()
    latin1 = tmp_path / "latin1.diff"
    latin1.write_bytes(b"diff --git a/calc/x.py b/calc/x.py\n--- a/calc/x.py\n+++ b/calc/x.py\n@@ -1 +1 @@\n-a\n+caf\xe9\n")
    result = runner.invoke(app, ["grade", str(tasks), "--repos", str(swe_repo.repos_dir), "--patch", str(latin1)])
    assert result.exit_code == 2 and f"{latin1}:6: not UTF-8 (byte 0xe9" in result.output
    assert "Traceback" not in result.output

    predictions = tmp_path / "preds.jsonl"
    rows = [{"instance_id": "acme__calc-1", "model_patch": ""},
            {"instance_id": "acme__calc-2", "model_patch": "diff --git a/l.png b/l.png\nGIT binary patch\nliteral 1\n"}]
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["grade", str(tasks), "--repos", str(swe_repo.repos_dir), "--patch", str(predictions)])
    assert result.exit_code == 2 and f"{predictions}:2: field 'model_patch': a binary patch" in result.output


def test_statuses_come_from_the_report_and_dropped_files_are_recorded(swe_repo) -> None:
    repos = RepoIndex([swe_repo.repos_dir])
    patch = _rewrite(swe_repo, {"calc/__init__.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
                                "conftest.py": "# harmless, but not the patch's to change\n"})
    result = grade(swe_repo.task, patch, repos)
    assert result.resolved and result.status_source == "report"
    assert result.dropped == {"conftest.py": "test infrastructure"}
    custom = swe_repo.task.model_copy(update={"test_cmd": "echo 'PASSED tests/test_calc.py::test_add'; "
                                                         "echo 'PASSED tests/test_calc.py::test_mul'"})
    from_log = grade(custom, "", repos)  # no pytest in the command: the log is all there is
    assert from_log.status_source == "log" and from_log.resolved


def test_the_fallbacks_run_in_order_inside_the_sandbox(swe_repo) -> None:
    """A hunk whose line numbers and one context line are off: git apply refuses, patch --fuzz takes it."""
    repos = RepoIndex([swe_repo.repos_dir])
    fuzzy = ("diff --git a/calc/__init__.py b/calc/__init__.py\n--- a/calc/__init__.py\n+++ b/calc/__init__.py\n"
             "@@ -1,3 +1,3 @@\n def add(x, y):\n-    return a - b\n+    return a + b\n \n")
    result = grade(swe_repo.task, fuzzy, repos)
    assert result.resolved and result.apply_method == "patch --fuzz=5", result.reason
    broken_tests = swe_repo.task.model_copy(update={"test_patch": swe_repo.task.test_patch.replace(
        "tests/test_calc.py", "tests/test_gone.py")})  # a file the base does not have
    result = grade(broken_tests, swe_repo.task.patch, repos)
    assert result.status == "test_patch_failed" and "$ git apply" in result.reason and "$ patch --fuzz=5" in result.reason
