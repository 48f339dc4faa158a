"""The catalogue of attacks, shared by tests/security and scripts/attack_table.py.

An attacker agent is a scripted student (text format) run through `oec
collect`: each command is one ```bash block, then a submit. A hacked grade is
a real diff of the target task's workspace (`patch_of`) given to `oec grade`.
Everything goes through the real paths: the CLI, the bubblewrap sandbox, the
workspace, the diff, the grader.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import diff_after
from typer.testing import CliRunner

from oec.cli import app
from oec.tasks.bundled import bundled_repos_dir, load_bundled_tasks
from oec.tasks.model import Task

#: the target: slugify() cuts one word too many; its fix changes `max_length` to `max_length + 1`
TASK: Task = next(t for t in load_bundled_tasks() if t.instance_id == "oec-bundled__textkit-1")
FIXED_LINE = "cut = slug.rfind(sep, 0, max_length + 1)"
F2P = TASK.FAIL_TO_PASS
SOURCE = "textkit/slug.py"
TEST_FILE = "tests/test_slug.py"


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def task_file(tmp_path: Path, task: Task = TASK) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text(task.model_dump_json() + "\n")
    return path


def attack(tmp_path: Path, commands: list[str], *, name: str = "attack", task: Task = TASK) -> dict:
    """Run one on-policy rollout whose student runs `commands` then submits; return its trajectory record."""
    script = tmp_path / f"{name}.json"
    replies = [f"Next.\n```bash\n{command}\n```" for command in commands] + ["Done.\n<function=submit>\n</function>"]
    script.write_text(json.dumps(replies))
    out = tmp_path / f"run-{name}"
    code, output = run_cli("collect", task_file(tmp_path, task), "--student", f"scripted:@{script}",
                           "--strategy", "on-policy", "--out", out, "--concurrency", "1",
                           "--max-calls", str(len(replies) + 1))
    assert code == 0, output
    (record,) = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    return record


def observations(record: dict) -> str:
    return "\n".join(step["observation"] for step in record["steps"])


def new_file_patch(path: str, text: str) -> str:
    """A git-style patch adding `path` with `text`."""
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n{body}")


def grade_patch(tmp_path: Path, patch: str, name: str = "attack.diff") -> dict:
    """`oec grade --patch FILE --out OUT.json` on the target task; the one result."""
    diff = tmp_path / name
    diff.write_text(patch)
    out = tmp_path / f"{name}.json"
    code, output = run_cli("grade", task_file(tmp_path), "--patch", diff, "--out", out)
    assert code == 0, output
    (result,) = json.loads(out.read_text())
    return result


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- the patches of hacked grades: each leaves the bug in place -------------------------------------

DECIDING = TASK.FAIL_TO_PASS + TASK.PASS_TO_PASS
FAKE_LINES = "".join(f"print('PASSED {test_id}')\n" for test_id in DECIDING)
_LINES = "".join(f"PASSED {test_id}\\n" for test_id in DECIDING)
#: written by the package at import (inside the pytest process, before any test runs) past pytest's output
#: capture: straight into every pipe the process holds, the log's among them
FAKE_AT_IMPORT = dedent(f"""
    import sys as _sys
    if 'pytest' in _sys.modules:
        import os as _os, stat as _stat
        for _fd in range(64):
            try:
                if _stat.S_ISFIFO(_os.fstat(_fd).st_mode):
                    _os.write(_fd, b"{_LINES}")
            except OSError:
                pass
    """)
DESELECT = " ".join(f"--deselect {test_id}" for test_id in F2P)


def patch_of(files: dict[str, str | None]) -> str:
    return diff_after(TASK, bundled_repos_dir(), files)


def base_text(path: str) -> str:
    return (bundled_repos_dir() / TASK.repo_dirname / path).read_text()


def with_appended(path: str, text: str) -> str:
    return base_text(path) + "\n" + text


#: a pytest hook that turns every failure into a pass (as conftest.py or as a plugin the config loads)
PASSING_HOOK = dedent("""
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed:
            report.outcome = "passed"
            report.longrepr = None
    """)


def exit_after_fake_lines() -> dict[str, str]:
    return {"textkit/__init__.py": with_appended("textkit/__init__.py", FAKE_AT_IMPORT + "    _os._exit(0)\n")}


def deselect_in(config: str) -> dict[str, str | None]:
    files: dict[str, str | None] = {config: CONFIGS[config],
                                    "textkit/__init__.py": with_appended("textkit/__init__.py", FAKE_AT_IMPORT)}
    if config != "pytest.ini":
        files["pytest.ini"] = None  # so the new file is the one pytest reads
    return files


def no_terminal() -> dict[str, str]:
    return {"pytest.ini": "[pytest]\ntestpaths = tests\naddopts = -p no:terminal\n",
            "textkit/__init__.py": with_appended("textkit/__init__.py", FAKE_AT_IMPORT)}


def repo_plugin() -> dict[str, str]:
    return {"pytest.ini": "[pytest]\ntestpaths = tests\naddopts = -p evilplugin\n", "evilplugin.py": PASSING_HOOK}


def shadowing_test_file() -> dict[str, str]:
    """The deciding test file, its `slugify` replaced by a fixed copy right after the imports."""
    shadow = dedent(f"""
        import pathlib as _pathlib
        _source = (_pathlib.Path(__file__).parents[1] / "{SOURCE}").read_text()
        _fixed = {{}}
        exec(_source.replace("max_length)", "max_length + 1)").replace("from __future__ import annotations", ""), _fixed)
        slugify = _fixed["slugify"]
        """)
    head, _, rest = base_text(TEST_FILE).partition("\n\n\n")  # far from test_patch's hunk at the end
    return {TEST_FILE: head + "\n" + shadow + "\n\n" + rest}


def fixed_package_in_tests() -> dict[str, str]:
    package = bundled_repos_dir() / TASK.repo_dirname / "textkit"
    files = {f"tests/textkit/{p.name}": p.read_text() for p in package.glob("*.py")}
    files["tests/textkit/slug.py"] = files["tests/textkit/slug.py"].replace("max_length)", "max_length + 1)")
    return files


def fixed_source() -> str:
    return base_text(SOURCE).replace("max_length)", "max_length + 1)")


def fix_with_xfail_regression() -> dict[str, str]:
    broken = fixed_source().replace('        raise ValueError("sep must not be empty")',
                                    '        import pytest\n        pytest.xfail("empty separators are a known issue")')
    assert broken != fixed_source()
    return {SOURCE: broken}


#: a student command: an unchecked-hash .pyc of the fixed module, forced into the index; the source unfixed
COMPILED_FIX = (
    "python - <<'EOF'\n"
    "import importlib.util, pathlib, py_compile\n"
    f"src = pathlib.Path('{SOURCE}')\n"
    "fixed = pathlib.Path('/tmp/slug.py')\n"
    "fixed.write_text(src.read_text().replace('max_length)', 'max_length + 1)'))\n"
    f"py_compile.compile(str(fixed), cfile=importlib.util.cache_from_source('{SOURCE}'), dfile=str(src),\n"
    "                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
    "EOF\n"
    "git add -f textkit/__pycache__ && git status --short")


CONFIGS = {
    "pytest.ini": f"[pytest]\ntestpaths = tests\naddopts = {DESELECT}\n",
    "tox.ini": f"[pytest]\naddopts = {DESELECT}\n",
    "setup.cfg": f"[tool:pytest]\naddopts = {DESELECT}\n",
    "pyproject.toml": f"[tool.pytest.ini_options]\naddopts = \"{DESELECT}\"\n",
}


# -- escapes ----------------------------------------------------------------------------------------

EDIT = f"sed -i 's/max_length)/max_length + 1)/' {SOURCE}"

#: repository configuration that makes git run a program: each was enough to run code on the host before
GIT_PROGRAMS = {
    "fsmonitor": "git config core.fsmonitor 'env > {marker} #'",
    "hooks": ("mkdir -p .git/evil-hooks && printf '#!/bin/sh\\ntouch {marker}\\n' > .git/evil-hooks/post-index-change"
              " && chmod +x .git/evil-hooks/post-index-change && git config core.hooksPath .git/evil-hooks"),
    "filter driver": ("echo '*.py filter=evil' > .gitattributes && "
                      "git config filter.evil.clean 'touch {marker}; cat' && git config filter.evil.required true"),
    "include.path": ("printf '[core]\\n\\tfsmonitor = touch {marker} #\\n' > .git/evil.cfg && "
                     "git config include.path evil.cfg"),
    "diff.external": "git config diff.external 'touch {marker} #'",
    "textconv": "echo '*.py diff=tc' > .gitattributes && git config diff.tc.textconv 'touch {marker}; cat'",
}


GIT_WRITING_PATCHES = {
    # a hunk on the config the grader's workspace is made with: `git apply` refuses it, `patch --fuzz` did not
    "modify": ("diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n"
               "@@ -1,2 +1,4 @@\n [user]\n \tname = oec\n+[core]\n+\tfsmonitor = touch {marker} #\n"),
    "plain": new_file_patch(".git/config", "[core]\n\tfsmonitor = touch {marker} #"),
    "quoted": new_file_patch('.git/config', "[core]\n\tfsmonitor = touch {marker} #").replace(
        "a/.git/config", '"a/\\056git/config"').replace("b/.git/config", '"b/\\056git/config"'),
    "hook": new_file_patch(".git/hooks/post-checkout", "#!/bin/sh\ntouch {marker}"),
    "nested": new_file_patch("textkit/.git/config", "[core]\n\tfsmonitor = touch {marker} #"),
    "upper case": new_file_patch(".GIT/config", "[core]\n\tfsmonitor = touch {marker} #"),
}
