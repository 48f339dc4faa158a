"""oec's pytest report plugin: the statuses it writes are the ones `pytest -rA` prints, for every outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from oec.grading.log_parsers import TestStatus, parse_pytest_log
from oec.grading.report_plugin import (
    PLUGIN_MODULE,
    PYTEST_REPORT_PLUGIN,
    REPORT_ENV,
    parse_report,
)

OUTCOMES = '''
import pytest

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown")

def test_pass(): pass
def test_fail(): assert False
def test_skip(): pytest.skip("no")
@pytest.mark.xfail(reason="known")
def test_xfail(): assert False
@pytest.mark.xfail(reason="known")
def test_xpass(): pass
@pytest.mark.xfail(strict=True, reason="known")
def test_xpass_strict(): pass
def test_setup_error(broken_setup): pass
def test_teardown_error(broken_teardown): pass
@pytest.mark.parametrize("x", ["a b", "c[d]"])
def test_param(x): assert x != "c[d]"
def test_imperative_xfail(): pytest.xfail("marked from inside")
'''


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "test_outcomes.py").write_text(OUTCOMES)
    report = tmp_path / "report.jsonl"
    env = {**os.environ, REPORT_ENV: str(report), "PYTHONPATH": str(PYTEST_REPORT_PLUGIN.parent),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-p", PLUGIN_MODULE, "-p", "no:cacheprovider",
                           *args], cwd=tmp_path, env=env, capture_output=True, text=True)
    return proc, report


def test_the_report_agrees_with_the_summary_pytest_prints(tmp_path: Path) -> None:
    proc, report_file = _run(tmp_path, "tests/test_outcomes.py")
    report = parse_report(report_file.read_bytes())
    assert report.complete and report.exit_statuses == [proc.returncode] == [1]
    # -rA lists a skip by location ("SKIPPED [1] tests/test_outcomes.py:15: no"), not by id: the report has the id
    from_log = {k: v for k, v in parse_pytest_log(proc.stdout).items() if not k.startswith("[")}
    assert {k: v for k, v in report.statuses.items() if not k.endswith("::test_skip")} == from_log
    expected = {"pass": "PASSED", "fail": "FAILED", "skip": "SKIPPED", "xfail": "XFAIL", "xpass": "XPASS",
                "xpass_strict": "FAILED", "setup_error": "ERROR", "teardown_error": "ERROR",
                "param[a b]": "PASSED", "param[c[d]]": "FAILED", "imperative_xfail": "XFAIL"}
    assert {k.split("::test_", 1)[1]: v.value for k, v in report.statuses.items()} == expected


def test_a_run_cut_short_is_incomplete(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("import os\n\ndef pytest_collection_finish(session):\n    os._exit(0)\n")
    proc, report_file = _run(tmp_path, "tests/test_outcomes.py")
    report = parse_report(report_file.read_bytes())
    assert proc.returncode == 0 and report.sessions == 1 and not report.complete and report.statuses == {}


def test_collection_errors_and_torn_lines() -> None:
    data = (b'{"event": "start"}\n{"event": "collect", "nodeid": "tests/test_x.py", "outcome": "failed"}\n'
            b'{"event": "test", "nodeid": "t::a", "when": "call", "outcome": "passed", "wasxfail": false}\n'
            b'{"event": "test", "nodeid": "t::a", "when": "teardown", "outcome": "failed", "wasxfail": false}\n'
            b'{"event": "finish", "exitstatus": 1}\n{"event": "test", "nodeid": "t::b", "wh')
    report = parse_report(data)
    assert report.complete and report.statuses == {"tests/test_x.py": TestStatus.ERROR, "t::a": TestStatus.ERROR}
