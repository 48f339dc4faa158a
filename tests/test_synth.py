"""oec synth: bug families, candidates, validation by reason, rows that grade, resume, split, a PyPI sdist."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import libcst as cst
import pytest
from typer.testing import CliRunner

from oec.cli import app
from oec.env.repos import RepoIndex
from oec.grading.batch import grade_many
from oec.grading.log_parsers import TestStatus
from oec.synth import validate as validate_mod
from oec.synth.candidates import generate, is_source_file
from oec.synth.modifiers import KINDS, apply_kind, count_sites
from oec.synth.runner import SynthConfig, synth_repo
from oec.synth.split import split_tasks
from oec.synth.state import StateFile
from oec.synth.statement import leaks_fix, template_statement, write_with_model
from oec.synth.validate import Baseline, classify
from oec.tasks.loaders import load_tasks
from oec.tasks.model import Task

ROOT = Path(__file__).resolve().parents[1]
SDIST_CACHE = ROOT / "build" / "test-sdists"
runner = CliRunner()

SAMPLE = '''
def f(xs, n=3, flag=True, sep="-"):
    """doc"""
    total = 0
    for i in range(1, len(xs)):
        if xs[i] < n and flag:
            total += xs[i] * 2
        elif xs[i] == 0:
            total -= 1
    y = xs[1:n]
    g(a, b)
    return total
'''


def _changes(kind: str) -> list[tuple[list[str], list[str]]]:
    """(removed lines, added lines) of every candidate of `kind` in SAMPLE's function."""
    module = cst.parse_module(SAMPLE)
    function = module.body[0]
    out = []
    for target in range(count_sites(kind, function)):
        code = module.deep_replace(function, apply_kind(kind, function, target)).code
        compile(code, "sample", "exec")
        diff = list(difflib.unified_diff(SAMPLE.splitlines(), code.splitlines(), lineterm="", n=0))[2:]
        out.append(([l[1:].strip() for l in diff if l.startswith("-")], [l[1:].strip() for l in diff if l.startswith("+")]))
    return out


@pytest.mark.parametrize("kind, removed, added", [
    ("op_swap", "total += xs[i] * 2", "total += xs[i] / 2"),
    ("op_swap", "if xs[i] < n and flag:", "if xs[i] < n or flag:"),
    ("op_swap", "total -= 1", "total += 1"),
    ("compare_swap", "if xs[i] < n and flag:", "if xs[i] <= n and flag:"),
    ("compare_swap", "elif xs[i] == 0:", "elif xs[i] != 0:"),
    ("off_by_one", "for i in range(1, len(xs)):", "for i in range(1, len(xs) + 1):"),
    ("off_by_one", "y = xs[1:n]", "y = xs[1:n - 1]"),
    ("invert_condition", "if xs[i] < n and flag:", "if not (xs[i] < n and flag):"),
    ("remove_statement", "g(a, b)", None),
    ("remove_statement", "total -= 1", "pass"),
    ("remove_branch", "elif xs[i] == 0:", None),
    ("swap_args", "g(a, b)", "g(b, a)"),
    ("change_constant", "total = 0", "total = 1"),
    ("change_default", 'def f(xs, n=3, flag=True, sep="-"):', 'def f(xs, n=3, flag=False, sep="-"):'),
    ("change_default", 'def f(xs, n=3, flag=True, sep="-"):', 'def f(xs, n=3, flag=True, sep=""):'),
    ("early_return", None, "return total"),
])
def test_each_family_makes_its_change(kind, removed, added):
    changes = _changes(kind)
    assert changes, kind
    assert any((not removed or removed in r) and (not added or added in a) for r, a in changes), changes
    if kind not in ("remove_branch", "early_return", "remove_statement"):
        assert all(len(r) == 1 and len(a) == 1 for r, a in changes), (kind, changes)  # one line each


def test_docstrings_and_decorators_are_left_alone():
    source = 'import functools\n\n@functools.lru_cache(maxsize=128)\ndef g(x):\n    """Doc."""\n    return x\n'
    module = cst.parse_module(source)
    function = module.body[1]
    assert count_sites("change_constant", function) == 0  # the decorator's 128 is not the function's code
    assert count_sites("remove_statement", function) == 0  # a docstring is not a statement to remove


def test_candidates_are_deduplicated_and_ids_stable():
    files = {"pkg/mod.py": "def f(n):\n    return list(range(1, n))\n", "tests/test_mod.py": "def test(): pass\n"}
    stats: dict[str, int] = {}
    cands = list(generate({p: c for p, c in files.items() if is_source_file(p)}, seed=1, stats=stats))
    assert stats.get("duplicate", 0) >= 1  # range(1, n) -> range(2, n): change_constant and off_by_one agree
    assert len({c.content for c in cands}) == len(cands)
    assert all(c.path == "pkg/mod.py" and c.function == "f" and c.line == 1 for c in cands)
    again = list(generate({"pkg/mod.py": files["pkg/mod.py"]}, seed=7))
    assert {c.id for c in again} == {c.id for c in cands}  # ids hash the bug, not the order
    assert not is_source_file("tests/test_mod.py") and not is_source_file("conftest.py")


def _baseline(passing, flaky=()):
    return Baseline("c" * 40, "pytest", list(passing), list(flaky), [], 0.1)


def test_classify_by_reason():
    base = _baseline(["t.py::a", "t.py::b", "t.py::c"], flaky=["t.py::d"])
    P, F = TestStatus.PASSED, TestStatus.FAILED
    assert classify(base, {"t.py": TestStatus.ERROR})[0] == "import_error"
    assert classify(base, {"t.py::a": F, "t.py::b": F, "t.py::c": F})[0] == "breaks_all_tests"
    assert classify(base, {"t.py::a": P, "t.py::b": P, "t.py::c": P, "t.py::d": P})[0] == "no_failure"
    assert classify(base, {"t.py::a": P, "t.py::b": P, "t.py::c": P, "t.py::d": F})[0] == "only_flaky"
    status, f2p, p2p, _ = classify(base, {"t.py::a": F, "t.py::b": P, "t.py::c": P, "t.py::d": F})
    assert (status, f2p, p2p) == ("valid", ["t.py::a"], ["t.py::b", "t.py::c"])


def test_flaky_tests_between_two_clean_runs_are_excluded(monkeypatch, tmp_path):
    runs = iter([{"t.py::a": TestStatus.PASSED, "t.py::b": TestStatus.PASSED, "t.py::c": TestStatus.FAILED},
                 {"t.py::a": TestStatus.PASSED, "t.py::b": TestStatus.FAILED, "t.py::c": TestStatus.FAILED}])

    class FakeRun:
        timed_out, output = False, ""

    class Tested:
        def __init__(self, statuses):
            self.statuses, self.problem, self.run = statuses, None, FakeRun()

    monkeypatch.setattr(validate_mod, "_run", lambda *a, **k: (Tested(next(runs)), 0.2))
    base = validate_mod.clean_baseline("o/r", "c" * 40, "pytest", RepoIndex([]), cache=tmp_path)
    assert (base.passing, base.flaky, base.failing) == (["t.py::a"], ["t.py::b"], ["t.py::c"])
    assert validate_mod.clean_baseline("o/r", "c" * 40, "pytest", RepoIndex([]), cache=tmp_path) == base  # cached


def test_statement_names_tests_never_the_fix():
    fix = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-    return a - b\n+    return a + b\n"
    text = template_statement(["t.py::test_add", "t.py::test_sum"],
                              {"t.py::test_add": "AssertionError: assert -1 == 3",
                               "t.py::test_sum": "NameError: see return a + b"}, "pytest t.py", fix)
    assert "t.py::test_add" in text and "assert -1 == 3" in text and "test_sum" in text
    assert leaks_fix(text, fix) is None and "m.py" not in text
    from oec.models.registry import make_provider
    from oec.models.scripted import register_script

    register_script("synth-leaky", ["The bug: it should `return a + b`."])
    register_script("synth-good", ["add() gives -1 for add(1, 2)\n\nExpected 3."])
    assert write_with_model("scripted:synth-leaky", ["t.py::test_add"], {}, {}, fix,
                            provider=make_provider("scripted:synth-leaky")) is None
    good = write_with_model("scripted:synth-good", ["t.py::test_add"], {}, {}, fix,
                            provider=make_provider("scripted:synth-good"))
    assert good and good.startswith("add() gives -1")


def _task(i, file, function):
    return Task(instance_id=f"o__r.synth-{i}", repo="o/r", base_commit="a" * 40, problem_statement="x",
                synth={"file": file, "function": function, "kind": "op_swap"})


def test_split_keeps_functions_and_files_disjoint():
    tasks = [_task(i, f"m{i % 3}.py", f"f{i % 5}") for i in range(40)]
    for by in ("function", "file"):
        train, held = split_tasks(tasks, 0.25, by=by, seed=3)
        assert len(train) + len(held) == 40 and train and held
        key = (lambda t: (t.synth["file"], t.synth["function"])) if by == "function" else (lambda t: t.synth["file"])
        assert not {key(t) for t in train} & {key(t) for t in held}
    assert split_tasks(tasks, 0.25, seed=3) == split_tasks(tasks, 0.25, seed=3)


# -- in the sandbox -----------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout


def _git_repo(path: Path) -> Path:
    _git(path, "init", "-q")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "clean")
    return path


TINY = {
    "tiny/__init__.py": "",
    "tiny/core.py": (
        "def add(a, b):\n    return a + b\n\n\n"
        "def unused(x):\n    return x * 3\n\n\n"
        "def setting():\n    strict = False\n    if strict:\n        raise RuntimeError('strict')\n    return 1\n\n\n"
        "LEVEL = setting()\n"
    ),
    "tests/test_core.py": "from tiny.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                          "def test_add_zero():\n    assert add(0, 4) == 4\n",
    "tests/test_other.py": "def test_independent():\n    assert 1 + 1 == 2\n",
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    "conftest.py": "",
}


@pytest.fixture
def tiny_repo(tmp_path):
    repo = tmp_path / "src" / "tiny"
    for rel, text in TINY.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    return _git_repo(repo)


@pytest.mark.slow
def test_validation_drops_by_reason(tiny_repo, tmp_path):
    out = tmp_path / "out"
    result = synth_repo(tiny_repo, out, SynthConfig(kinds=("op_swap", "invert_condition", "change_constant"),
                                                    concurrency=2), StateFile(out / "s.jsonl"))
    by_status = Counter(o.status for o in result.outcomes)
    # setting() runs at import: inverting its test raises while tests/test_core.py imports tiny.core
    assert by_status["import_error"] >= 1, by_status
    assert by_status["no_failure"] >= 1, by_status   # unused() is tested by nothing
    assert by_status["valid"] >= 1, by_status        # add(): a + b -> a - b
    valid = [o for o in result.outcomes if o.status == "valid"]
    assert all(o.function == "add" for o in valid)
    assert all(o.fail_to_pass and "tests/test_other.py::test_independent" in o.pass_to_pass for o in valid)
    assert result.repo == "local/tiny" and (out / "repos" / "local__tiny" / "HEAD").is_file()
    assert len(result.rows) == len(valid)
    row = result.rows[0]
    assert row.test_cmd.endswith("tests/test_core.py") and row.PASS_TO_PASS == [
        t for t in row.PASS_TO_PASS if t.startswith("tests/test_core.py")]
    # the user's repository is left as it was: one commit, no synth refs
    assert _git(tiny_repo, "rev-list", "--all").count("\n") == 1


def _grade(path: Path, repos: Path, patch: str) -> list:
    tasks = load_tasks(path).tasks
    pairs = [(t, t.fix_patch if patch == "gold" else "") for t in tasks]
    return grade_many(pairs, RepoIndex([repos]), jobs=2)


@pytest.mark.slow
def test_bundled_project_end_to_end(tmp_path):
    from oec.tasks.bundled import bundled_repos_dir

    out = tmp_path / "synth" / "tasks.jsonl"
    result = runner.invoke(app, ["synth", str(bundled_repos_dir() / "oec-bundled__textkit"), "--out", str(out),
                                 "--max", "10", "-j", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    loaded = load_tasks(out)
    assert not loaded.errors and len(loaded.tasks) >= 4, result.output
    repos = out.parent / "repos"
    for task in loaded.tasks:
        meta = task.model_extra["synth"]
        assert meta["kind"] in KINDS and meta["file"].startswith("textkit/") and meta["f2p"] == len(task.FAIL_TO_PASS)
        assert task.test_patch == "" and task.FAIL_TO_PASS and task.patch.startswith("diff --git")
        for word in (meta["kind"], meta["function"].split(".")[-1], meta["file"]):
            assert word not in task.instance_id
        assert leaks_fix(task.problem_statement, task.patch) is None
    report = json.loads((out.parent / "tasks.jsonl.report.json").read_text())
    assert report["candidates"] == 10 and report["valid"] == len(loaded.tasks)

    validated = runner.invoke(app, ["tasks", "validate", str(out), "--repos", str(repos)])
    assert validated.exit_code == 0, validated.output  # no workspace can read a fix
    assert "LEAKS" not in validated.output

    assert all(r.resolved for r in _grade(out, repos, "gold"))
    assert not any(r.resolved for r in _grade(out, repos, "empty"))

    run_dir = tmp_path / "run"
    collected = runner.invoke(app, ["collect", str(out), "--repos", str(repos), "--strategy", "bc", "--expert",
                                    "oracle", "--concurrency", "2", "--out", str(run_dir), "--no-preflight"])
    assert collected.exit_code == 0, collected.output
    trajectories = [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajectories) == len(loaded.tasks)
    assert all(t["reward"]["resolved"] for t in trajectories)

    # the split of these rows: no function on both sides
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    split = runner.invoke(app, ["synth-split", str(out), "--held-out", "0.3", "--train-out", str(train),
                                "--held-out-out", str(held)])
    assert split.exit_code == 0, split.output
    fn = lambda p: {(t.model_extra["synth"]["file"], t.model_extra["synth"]["function"]) for t in load_tasks(p).tasks}
    assert not fn(train) & fn(held)
    assert len(load_tasks(train).tasks) + len(load_tasks(held).tasks) == len(loaded.tasks)

    # --locate (the easier family): the same validated bugs, reused from the state file, and each statement
    # names the function and file, never the line or the change
    located = runner.invoke(app, ["synth", str(bundled_repos_dir() / "oec-bundled__textkit"), "--out", str(out),
                                  "--max", "10", "-j", "2", "--seed", "1", "--locate"])
    assert located.exit_code == 0, located.output
    again = load_tasks(out).tasks
    assert [t.instance_id for t in again] == [t.instance_id for t in loaded.tasks]
    for before, task in zip(loaded.tasks, again):
        meta = task.model_extra["synth"]
        assert task.problem_statement.startswith(before.problem_statement)
        hint = task.problem_statement[len(before.problem_statement):]
        assert f"`{meta['function'].rsplit('.', 1)[-1]}`" in hint and f"`{meta['file']}`" in hint
        assert meta["statement"] == "template+location" and leaks_fix(task.problem_statement, task.patch) is None


@pytest.mark.slow
def test_stopped_run_resumes_without_redoing(tmp_path):
    from oec.tasks.bundled import bundled_repos_dir

    source = bundled_repos_dir() / "oec-bundled__rangeset"
    out = tmp_path / "out"
    state = StateFile(out / "tasks.jsonl.state.jsonl")
    config = SynthConfig(max_candidates=8, concurrency=2, seed=2)
    seen = []

    def stop_after_three(outcome):
        seen.append(outcome.id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synth_repo(source, out, config, state, on_done=stop_after_three)
    first = [r["outcome"]["id"] for r in state.load()]
    assert len(first) >= 3
    with open(state.path, "a") as handle:
        handle.write('{"repo": "oec-bundled/rangeset", "outc')  # a line torn by a kill
    redone = []
    result = synth_repo(source, out, config, state, on_done=lambda o: redone.append(o.id))
    assert result.reused == len(first) and not set(redone) & set(first)
    ids = [r["outcome"]["id"] for r in state.load()]
    assert len(ids) == len(set(ids)) == 8 == len(result.outcomes)
    again = synth_repo(source, out, config, state, on_done=lambda o: pytest.fail("nothing is left to run"))
    assert again.reused == 8 and [t.instance_id for t in again.rows] == [t.instance_id for t in result.rows]


SDIST = ("inflection", "0.5.1")


def _sdist(tmp_path: Path) -> Path:
    """inflection's sdist from PyPI (cached in build/), unpacked and committed as a fresh git repository."""
    name, version = SDIST
    archive = SDIST_CACHE / f"{name}-{version}.tar.gz"
    if not archive.is_file():
        SDIST_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                        f"{name}=={version}", "-d", str(SDIST_CACHE)], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    repo = tmp_path / f"{name}-{version}"
    (repo / ".gitignore").write_text("__pycache__/\n*.pyc\n*.egg-info/\n")
    return _git_repo(repo)


@pytest.mark.slow
def test_third_party_sdist_from_pypi(tmp_path):
    repo = _sdist(tmp_path)
    out = tmp_path / "synth" / "tasks.jsonl"
    result = runner.invoke(app, ["synth", str(repo), "--out", str(out), "--max", "6", "-j", "2"])
    assert result.exit_code == 0, result.output
    tasks = load_tasks(out).tasks
    assert tasks, result.output
    assert all(t.repo == "local/inflection-0.5.1" and t.FAIL_TO_PASS for t in tasks)
    assert all(t.model_extra["synth"]["file"] == "inflection/__init__.py" for t in tasks)
    repos = out.parent / "repos"
    assert all(r.resolved for r in _grade(out, repos, "gold"))
    assert not any(r.resolved for r in _grade(out, repos, "empty"))
