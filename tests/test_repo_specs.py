"""Per-repository test commands and parsers, from SWE-bench's and SWE-smith's own facts (repo_specs.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oec.grading.specs import SPECS_FILE, spec_for, test_command
from oec.tasks.loaders import load_tasks
from oec.tasks.model import Task

SPECS = json.loads(SPECS_FILE.read_text())
VERIFIED_REPOS = {  # the 12 repositories of SWE-bench Verified
    "astropy/astropy", "django/django", "matplotlib/matplotlib", "mwaskom/seaborn", "pallets/flask",
    "psf/requests", "pydata/xarray", "pylint-dev/pylint", "pytest-dev/pytest", "scikit-learn/scikit-learn",
    "sphinx-doc/sphinx", "sympy/sympy"}


def _patch(*paths: str) -> str:
    return "".join(f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-a\n+b\n" for p in paths)


def _task(repo: str, version: str | None = None, **fields) -> Task:
    return Task(instance_id=f"{repo.replace('/', '__')}-1", repo=repo, base_commit="abcdef1", problem_statement="",
                version=version, **fields)


def test_the_facts_come_from_the_maintained_packages_and_cover_verified() -> None:
    assert SPECS["sources"] == {"swebench": "4.1.0", "swesmith": "0.0.9"}
    assert VERIFIED_REPOS <= set(SPECS["swebench"]["repos"])
    assert len(SPECS["swesmith"]["profiles"]) >= 100


def test_django_runs_its_runner_over_test_modules_and_is_read_as_django() -> None:
    task = _task("django/django", "3.0", test_patch=_patch("tests/auth_tests/test_validators.py", "docs/x.txt"))
    spec = spec_for(task)
    assert (spec.source, spec.log_parser, spec.id_rules) == ("swebench", "django", ())
    assert test_command(task) == ("./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 "
                                  "auth_tests.test_validators")
    assert "export LANG=en_US.UTF-8" in spec.env_setup and spec.reinstall


def test_sympy_and_pytest_repositories() -> None:
    sympy = _task("sympy/sympy", "1.7", test_patch=_patch("sympy/core/tests/test_basic.py"))
    assert spec_for(sympy).log_parser == "sympy"
    assert test_command(sympy).endswith("bin/test -C --verbose sympy/core/tests/test_basic.py")
    requests = _task("psf/requests", "2.0", test_patch=_patch("test_requests.py"))
    assert spec_for(requests).id_rules == ("option-paths",) and test_command(requests) == "pytest -rA test_requests.py"
    unknown_version = _task("pallets/flask", "99.0", test_patch=_patch("tests/test_basic.py"))
    assert test_command(unknown_version).endswith("tests/test_basic.py")  # the newest version's command


def test_a_rows_own_command_wins_and_unknown_repositories_run_pytest_over_the_deciding_files() -> None:
    own = _task("django/django", "3.0", test_cmd="make check")
    assert test_command(own) == "make check"
    plain = _task("acme/widgets", FAIL_TO_PASS=["tests/test_a.py::test_x"], PASS_TO_PASS=["tests/test_b.py::test_y"],
                  test_patch=_patch("tests/test_a.py", "tests/data.json"))
    assert spec_for(plain).source == "default"
    assert test_command(plain) == ("python -m pytest -rA -p no:cacheprovider tests/test_a.py tests/test_b.py "
                                   "tests/data.json")


def test_swesmith_rows_as_published(tmp_path: Path) -> None:
    """Keys as SWE-smith publishes them: no base_commit, no test_patch, `patch` the bug, the image named."""
    row = {"instance_id": "oauthlib__oauthlib.1fd52536.combine_file__2nfzwp19",
           "repo": "swesmith/oauthlib__oauthlib.1fd52536",
           "image_name": "jyangballin/swesmith.x86_64.oauthlib_1776_oauthlib.1fd52536",
           "patch": _patch("oauthlib/common.py"), "problem_statement": "urldecode breaks",
           "FAIL_TO_PASS": '["tests/test_common.py::test_urldecode"]', "PASS_TO_PASS": "[]"}
    path = tmp_path / "swesmith.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (task,) = load_tasks(path).tasks
    assert task.bug_shaped and task.base_commit is None and task.test_patch == ""
    assert "-b\n+a\n" in task.fix_patch  # gold: the bug, reversed
    spec = spec_for(task)
    assert spec.source == "swesmith" and spec.selection == "suite" and spec.log_parser == "pytest"
    assert test_command(task).endswith("pytest --disable-warnings --color=no --tb=no --verbose")
    from oec.grading.grader import _base_key

    assert _base_key(task) != _base_key(task.model_copy(update={"patch": _patch("oauthlib/other.py")}))
    mypy = Task.model_validate({**row, "instance_id": "python__mypy.e93f06ce.pr_1", "repo": "swesmith/python__mypy.e93f06ce",
                                "FAIL_TO_PASS": ["mypy/test/testcheck.py::TypeCheckSuite::check-a.test::testOne"]})
    assert test_command(mypy).endswith("pytest --color=no -rA -k testOne")


def test_swebench_rows_from_the_datasets_library(tmp_path: Path) -> None:
    """Rows as `datasets` writes them (parquet and JSON lines), test lists as JSON strings, extra keys kept."""
    datasets = pytest.importorskip("datasets")
    row = {"instance_id": "django__django-11099", "repo": "django/django", "base_commit": "d26b2424437dabeeca94d7900b37d2df4410da0c",
           "problem_statement": "UsernameValidator allows trailing newline", "patch": _patch("django/contrib/auth/validators.py"),
           "test_patch": _patch("tests/auth_tests/test_validators.py"), "version": "3.0",
           "FAIL_TO_PASS": '["test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)"]',
           "PASS_TO_PASS": "[]", "environment_setup_commit": "419a78300f7cd27611196e1e464d50fd0385ff27",
           "hints_text": "", "created_at": "2019-03-20T03:46:18Z", "difficulty": "<15 min fix"}
    dataset = datasets.Dataset.from_list([row])
    for name, write in (("rows.parquet", dataset.to_parquet), ("rows.jsonl", lambda p: dataset.to_json(p, lines=True))):
        write(str(tmp_path / name))
        (task,) = load_tasks(tmp_path / name).tasks
        assert task.FAIL_TO_PASS == ["test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)"]
        assert task.model_dump()["difficulty"] == "<15 min fix" and not task.bug_shaped
