"""Task files: every format loads, bad rows name file/line/field, good rows survive."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.tasks.loaders import TaskFileError, load_tasks, load_tasks_strict
from oec.tasks.model import Task

ROW = {
    "instance_id": "acme__widgets-1",
    "repo": "acme/widgets",
    "base_commit": "0123456789abcdef0123456789abcdef01234567",
    "problem_statement": "widgets break",
    "patch": "diff --git a/w.py b/w.py\n",
    "test_patch": "",
    "FAIL_TO_PASS": '["tests/test_w.py::test_a"]',
    "PASS_TO_PASS": '["tests/test_w.py::test_b", "tests/test_w.py::test_c[1 - 2]"]',
    "version": 1.0,
    "environment_setup_commit": "0123456789abcdef0123456789abcdef01234567",
}


def test_swebench_row_with_json_string_test_lists() -> None:
    task = Task.model_validate(ROW)
    assert task.FAIL_TO_PASS == ["tests/test_w.py::test_a"]
    assert task.PASS_TO_PASS[1] == "tests/test_w.py::test_c[1 - 2]"
    assert task.version == "1.0"
    assert task.repo_dirname == "acme__widgets"


def test_lists_accepted_and_extra_keys_kept() -> None:
    task = Task.model_validate({**ROW, "FAIL_TO_PASS": ["a::b"], "PASS_TO_PASS": [], "hints_text": "h"})
    assert task.FAIL_TO_PASS == ["a::b"] and task.PASS_TO_PASS == []
    assert task.model_dump()["hints_text"] == "h"


def test_jsonl_bad_rows_are_named_and_good_rows_kept(tmp_path: Path) -> None:
    bad_field = {**ROW, "instance_id": "x-2", "FAIL_TO_PASS": "[not json"}
    missing = {k: v for k, v in ROW.items() if k != "repo"} | {"instance_id": "x-3"}
    lines = [json.dumps(ROW), "", json.dumps(bad_field), "{oops", json.dumps(missing), json.dumps(ROW)]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = load_tasks(path)

    assert [t.instance_id for t in result.tasks] == ["acme__widgets-1"]
    by_line = {e.line: e for e in result.errors}
    assert set(by_line) == {3, 4, 5, 6}
    assert by_line[3].field == "FAIL_TO_PASS" and "JSON" in by_line[3].message
    assert by_line[4].field is None and "invalid JSON" in by_line[4].message
    assert by_line[5].field == "repo"
    assert by_line[6].field == "instance_id" and "duplicate" in by_line[6].message
    assert str(by_line[5]).startswith(f"{path}:5: field 'repo'")
    with pytest.raises(TaskFileError, match="4 bad task row"):
        load_tasks_strict(path)


def test_json_array_errors_point_at_the_object_line(tmp_path: Path) -> None:
    good = json.dumps(ROW, indent=2)
    bad = json.dumps({**ROW, "instance_id": "x-2", "base_commit": 5}, indent=2)
    path = tmp_path / "tasks.json"
    path.write_text("[\n" + good + ",\n" + bad + "\n]\n")
    result = load_tasks(path)
    assert len(result.tasks) == 1
    (error,) = result.errors
    assert error.line == 2 + good.count("\n") + 1
    assert error.field == "base_commit"


def test_parquet_rows(tmp_path: Path) -> None:
    rows = [ROW, {**ROW, "instance_id": "x-2", "problem_statement": None}]
    path = tmp_path / "tasks.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = load_tasks(path)
    assert [t.instance_id for t in result.tasks] == ["acme__widgets-1"]
    assert result.errors[0].line == 2 and result.errors[0].field == "problem_statement"
    assert "row 2" in str(result.errors[0])


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_tasks(tmp_path / "nope.jsonl")
    (tmp_path / "t.csv").write_text("x")
    with pytest.raises(ValueError, match="unsupported"):
        load_tasks(tmp_path / "t.csv")


def test_cli_validate_reports_each_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "instance_id": "x-2", "repo": ""}) + "\n")
    result = CliRunner().invoke(app, ["tasks", "validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: field 'repo'" in result.output.replace("\n", "")
    assert "1 valid task(s), 1 error(s)" in result.output


@pytest.mark.parametrize(("field", "value"), [
    ("repo", "../../../../etc"), ("repo", "/etc/passwd"), ("repo", "acme/.."), ("repo", "a/b/c"),
    ("instance_id", "../escape"), ("instance_id", "a/b"), ("instance_id", "x; rm -rf /"), ("instance_id", ".."),
    ("base_commit", "--output=/tmp/x"), ("base_commit", "abc def"),
])
def test_rows_that_would_point_oec_at_host_paths_are_refused_by_name(field: str, value: str, tmp_path: Path) -> None:
    """`repo` picks a folder, `instance_id` names workspaces and containers, `base_commit` reaches git's argv."""
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "instance_id": "acme__widgets-2", field: value}) + "\n")
    result = load_tasks(path)
    assert [t.instance_id for t in result.tasks] == ["acme__widgets-1"]
    (error,) = result.errors
    assert error.line == 2 and error.field == field and repr(value) in error.message
    cli = CliRunner().invoke(app, ["tasks", "validate", str(path), "--no-leaks"])
    assert cli.exit_code == 1 and f"{path}:2" in cli.output and field in cli.output
