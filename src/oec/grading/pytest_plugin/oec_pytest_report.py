"""oec's pytest report: every test outcome as a JSON line in the file named by $OEC_PYTEST_REPORT.

Loaded by the grader with `-p oec_pytest_report` (through PYTEST_ADDOPTS and
PYTHONPATH), so the statuses come from pytest's own report objects, not from
lines in the log that any test, fixture or patched module can print. The
last line of a run that finished is {"event": "finish", ...}; a run cut short
(os._exit, a crash, a kill) has none, and the grader trusts none of it.

Standalone and old-fashioned on purpose: it runs under the task's own Python
and pytest, which may be years older than oec's (no f-strings, no imports
beyond the standard library).
"""

import json
import os

REPORT_ENV = "OEC_PYTEST_REPORT"

_state = {"file": None, "config": None}


def _write(record):
    handle = _state["file"]
    if handle is not None:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()


def _is_worker(config):
    """pytest-xdist workers report through the controller, which writes the one report."""
    return hasattr(config, "workerinput") or hasattr(config, "slaveinput")


def _cwd_nodeid(nodeid):
    """The id as `pytest -rA` prints it (relative to the invocation folder), which task files list."""
    config = _state["config"]
    convert = getattr(config, "cwd_relative_nodeid", None)
    try:
        return convert(nodeid) if convert is not None else nodeid
    except Exception:  # an old pytest, or a nodeid it cannot place
        return nodeid


def pytest_configure(config):
    path = os.environ.get(REPORT_ENV)
    if not path or _is_worker(config) or _state["file"] is not None:
        return
    _state["config"] = config
    _state["file"] = open(path, "a")


def pytest_sessionstart(session):
    _write({"event": "start", "pid": os.getpid()})


def pytest_collectreport(report):
    if report.failed:
        _write({"event": "collect", "nodeid": _cwd_nodeid(report.nodeid), "outcome": "failed"})


def pytest_runtest_logreport(report):
    _write({
        "event": "test",
        "nodeid": _cwd_nodeid(report.nodeid),
        "when": report.when,
        "outcome": report.outcome,
        "wasxfail": hasattr(report, "wasxfail"),
    })


def _trylast(hook):
    """Run after every other plugin's hook of the same name (they may still change the exit status)."""
    try:
        import pytest

        return pytest.hookimpl(trylast=True)(hook)
    except (ImportError, AttributeError):  # pytest < 2.8
        hook.trylast = True
        return hook


@_trylast
def pytest_sessionfinish(session, exitstatus):
    _write({"event": "finish", "exitstatus": int(getattr(session, "exitstatus", exitstatus))})


def pytest_unconfigure(config):
    handle = _state["file"]
    if handle is not None and _state["config"] is config:
        handle.close()
        _state["file"] = None
