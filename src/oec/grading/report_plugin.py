"""Per-test statuses from oec's own pytest report, not from the log.

The log of a test run is the model's to write: a patched module or a test can
print `PASSED tests/test_x.py::test_y` and `os._exit(0)`. So the grader runs
pytest with a plugin of oec's (`pytest_plugin/oec_pytest_report.py`, loaded
with `-p`) that writes each report pytest makes into a file outside the
workspace, and reads the statuses from there. A run that did not finish (no
"finish" record for every "start") is not trusted at all.

What this does not contain: code under test runs inside the pytest process,
so a patch that rewrites pytest's objects from within (monkeypatching
`_pytest`) can still lie. The grader keeps a patch from configuring pytest
(conftest.py, ini files, plugins) and the reward-hack filter drops rollouts
whose patch reaches for pytest's internals (`oec.grading.patch_policy`).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from oec.grading.log_parsers import TestStatus

#: the plugin, run by the task's interpreter inside the sandbox; its folder holds nothing else
PYTEST_REPORT_PLUGIN = (Path(__file__).resolve().parent / "pytest_plugin" / "oec_pytest_report.py")
PLUGIN_MODULE = PYTEST_REPORT_PLUGIN.stem
REPORT_ENV = "OEC_PYTEST_REPORT"
MAX_REPORT_BYTES = 256 << 20
_SEVERE = {TestStatus.ERROR: 2, TestStatus.FAILED: 2}


@dataclass
class PytestReport:
    """What the plugin wrote: each test's status, and whether every pytest session it saw finished."""

    statuses: dict[str, TestStatus] = field(default_factory=dict)
    sessions: int = 0
    finished: int = 0
    exit_statuses: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.sessions > 0 and self.finished == self.sessions


def plugin_env_script(report_path: str, plugin_dir: str) -> str:
    """Shell that loads the plugin into every pytest the test command starts, reporting to `report_path`."""
    return "\n".join([
        f"export {REPORT_ENV}={shlex.quote(report_path)}",
        f'export PYTHONPATH={shlex.quote(plugin_dir)}"${{PYTHONPATH:+:$PYTHONPATH}}"',
        f'export PYTEST_ADDOPTS="-p {PLUGIN_MODULE}${{PYTEST_ADDOPTS:+ $PYTEST_ADDOPTS}}"',
    ])


def _status(when: str, outcome: str, wasxfail: bool) -> TestStatus | None:
    """The status `pytest -rA` would print for one report phase (None: a phase that decides nothing)."""
    if outcome == "failed":
        return TestStatus.FAILED if when == "call" else TestStatus.ERROR
    if outcome == "skipped":
        return TestStatus.XFAIL if wasxfail else TestStatus.SKIPPED
    if outcome == "passed" and when == "call":
        return TestStatus.XPASS if wasxfail else TestStatus.PASSED
    return None


def parse_report(data: bytes) -> PytestReport:
    """Statuses per test id from the plugin's JSON lines; a later phase's failure beats an earlier pass."""
    report = PytestReport()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a killed run
        if not isinstance(record, dict):
            continue
        event = record.get("event")
        if event == "start":
            report.sessions += 1
        elif event == "finish":
            report.finished += 1
            if isinstance(record.get("exitstatus"), int):
                report.exit_statuses.append(record["exitstatus"])
        elif event in ("test", "collect") and isinstance(record.get("nodeid"), str):
            status = (TestStatus.ERROR if event == "collect" else
                      _status(str(record.get("when")), str(record.get("outcome")), bool(record.get("wasxfail"))))
            if status is None:
                continue
            nodeid = record["nodeid"]
            previous = report.statuses.get(nodeid)
            if previous is None or _SEVERE.get(status, 0) >= _SEVERE.get(previous, 0):
                report.statuses[nodeid] = status
    return report
