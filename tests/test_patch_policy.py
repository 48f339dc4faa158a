"""The grader's reading of a patch: one parse (unidiff), per-file verdicts, one canonical text for the appliers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from oec.grading.patch_files import (
    PatchParseError,
    canonical,
    files_touched,
    parse_patch_files,
)
from oec.grading.patch_policy import (
    Reason,
    deciding_test_files,
    reward_hack_reasons,
    screen,
)
from oec.tasks.model import Task


def _add(path: str, text: str = "x = 1", mode: str = "100644") -> str:
    lines = text.splitlines()
    return (f"diff --git a/{path} b/{path}\nnew file mode {mode}\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines))


def _edit(path: str, old: str = "a", new: str = "b") -> str:
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"


TASK = Task(instance_id="acme__lib-1", repo="acme/lib", base_commit="abcdef1", problem_statement="",
            test_patch=_edit("tests/unit/test_core.py"),
            FAIL_TO_PASS=["tests/unit/test_core.py::test_new"], PASS_TO_PASS=["tests/test_other.py::test_old"],
            test_cmd="python tests/runtests.py --verbose")


def test_files_touched_reads_removed_lines_that_look_like_headers() -> None:
    """A removed line starting with '-- ' is content, not a file header (the old hand parser misread it)."""
    patch = ("diff --git a/notes.sql b/notes.sql\n--- a/notes.sql\n+++ b/notes.sql\n@@ -1,2 +1,2 @@\n"
             " select 1;\n--- a comment\n+-- another\n" + _add("new.py") +
             "diff --git a/old.py b/old.py\ndeleted file mode 100644\n--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-z\n")
    assert files_touched(patch) == ["notes.sql", "new.py", "old.py"]


@pytest.mark.parametrize(("header", "message"), [
    ('"a/\\056git/config"', "git internals"),
    ("a/../outside.py", "leaves the repository"),
    ("a/pkg/../../outside.py", "leaves the repository"),
    ("a//etc/passwd", "leaves the repository"),
    ("setup.py", "no a/ or b/ prefix"),
])
def test_paths_are_unquoted_and_placed_before_they_are_judged(header: str, message: str) -> None:
    target = "b/" + header[2:] if header.startswith("a/") else header.replace('"a/', '"b/')
    patch = f"diff --git {header} {target}\n--- {header}\n+++ {target}\n@@ -1 +1 @@\n-a\n+b\n"
    verdict = screen(patch, TASK)
    assert verdict.refused and message in verdict.refused and verdict.patch == ""


def test_each_file_gets_its_reason_and_only_the_rest_is_applied() -> None:
    judged = {
        "lib/core.py": None,
        "tests/unit/test_core.py": Reason.DECIDING_TEST,
        "tests/unit/helpers.py": Reason.TEST_FILE,            # in the test tree holding a deciding file
        "lib/test_util.py": Reason.TEST_FILE,                 # named like a test, anywhere
        "conftest.py": Reason.TEST_INFRA,
        "lib/conftest.py": Reason.TEST_INFRA,
        "setup.cfg": Reason.TEST_INFRA,
        "pyproject.toml": Reason.TEST_INFRA,
        "lib/x.pth": Reason.TEST_INFRA,
        "tests/runtests.py": Reason.TEST_FILE,
        "scripts/runtests.py": None,
        "lib/__pycache__/core.cpython-311.pyc": Reason.COMPILED,
        "lib/_speedups.so": Reason.COMPILED,
        "pytest.py": Reason.SHADOWING,
        "json/__init__.py": Reason.SHADOWING,
        "reproduce.py": None,
        "docs/test/conf.py": None,                            # a folder named test/ holding no deciding test
    }
    patch = "".join(_add(path) for path in judged)
    verdict = screen(patch, TASK)
    assert verdict.refused is None
    assert verdict.dropped == {p: r for p, r in judged.items() if r is not None}
    assert verdict.kept == [p for p, r in judged.items() if r is None]
    assert files_touched(verdict.patch) == verdict.kept


def test_the_test_command_names_its_runner_and_it_is_protected() -> None:
    task = TASK.model_copy(update={"test_cmd": "python scripts/runtests.py"})
    assert screen(_add("scripts/runtests.py"), task).dropped == {"scripts/runtests.py": Reason.TEST_INFRA}


def test_symlinks_submodules_and_binaries_are_dropped() -> None:
    binary = ("diff --git a/logo.png b/logo.png\nnew file mode 100644\nindex 0000000..9b2d1e7\n"
              "GIT binary patch\nliteral 5\nMcmZQzWMXCm00ICP\n\nliteral 0\nHcmV?d00001\n\n")
    submodule = ("diff --git a/vendor/x b/vendor/x\nnew file mode 160000\nindex 0000000..1234567\n"
                 "--- /dev/null\n+++ b/vendor/x\n@@ -0,0 +1 @@\n+Subproject commit 1234567\n")
    patch = _add("lib/link.py", "../../etc/passwd", mode="120000") + submodule + binary + _edit("lib/core.py")
    verdict = screen(patch, TASK)
    assert verdict.dropped == {"lib/link.py": Reason.SYMLINK, "vendor/x": Reason.SUBMODULE,
                               "logo.png": Reason.BINARY}
    assert verdict.kept == ["lib/core.py"]


def test_modifying_an_existing_top_level_module_with_a_stdlib_name_is_not_shadowing() -> None:
    assert screen(_edit("platform.py"), TASK).kept == ["platform.py"]
    assert screen(_add("platform.py"), TASK).dropped == {"platform.py": Reason.SHADOWING}


def test_deciding_files_come_from_the_test_patch_and_the_test_ids() -> None:
    assert deciding_test_files(TASK) == {"tests/unit/test_core.py", "tests/test_other.py"}


def test_canonical_text_applies_with_git_and_with_patch(tmp_path: Path) -> None:
    """What the appliers get: headers rebuilt from the checked paths, content byte for byte (CRLF kept)."""
    for name, text in {"a.py": "one\ntwo\n", "crlf.txt": "x\r\ny\r\n", "gone.py": "bye\n", "sp ace.py": "s\n",
                       "café.py": "c\n"}.items():
        (tmp_path / name).write_bytes(text.encode())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], cwd=tmp_path, check=True)
    (tmp_path / "a.py").write_text("one\nTWO\n")
    (tmp_path / "crlf.txt").write_bytes(b"x\r\nY\r\n")
    (tmp_path / "gone.py").unlink()
    (tmp_path / "sp ace.py").write_text("S\n")
    (tmp_path / "café.py").write_text("C\n")
    (tmp_path / "new.py").write_text("new\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    raw = subprocess.run(["git", "diff", "--cached", "--no-renames"], cwd=tmp_path, capture_output=True,
                         check=True).stdout.decode()
    assert '"a/caf\\303\\251.py"' in raw  # git quotes what is not plain ASCII
    text = canonical(parse_patch_files(raw))
    subprocess.run(["git", "stash", "-q"], cwd=tmp_path, check=True)  # back at the base
    for applier in (["git", "apply", "--check", "-"], ["patch", "--dry-run", "--batch", "-p1", "-i", "/dev/stdin"]):
        probe = subprocess.run(applier, cwd=tmp_path, input=text.encode(), capture_output=True)
        assert probe.returncode == 0, probe.stdout + probe.stderr
    assert sorted(files_touched(text)) == sorted(["a.py", "crlf.txt", "gone.py", "sp ace.py", "café.py", "new.py"])


def test_garbage_is_unreadable_not_a_crash() -> None:
    assert screen("hello\nworld\n", TASK).refused.startswith(Reason.UNREADABLE)
    with pytest.raises(PatchParseError):
        parse_patch_files("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n-a\n")


def test_reward_hack_reasons_without_a_task_and_reaching_into_pytest() -> None:
    quiet = _edit("lib/core.py", "a", "b")
    assert reward_hack_reasons(quiet) == {}
    assert reward_hack_reasons(_add("tests/test_new.py")) == {"tests/test_new.py": Reason.TEST_FILE}
    assert reward_hack_reasons(_add("lib/django/test/utils.py")) == {}  # source named test/: not a test tree
    reaching = _edit("lib/core.py", "a", "import _pytest.runner")
    assert reward_hack_reasons(reaching) == {"lib/core.py": Reason.PYTEST_TAMPERING}
    assert reward_hack_reasons(_edit("lib/core.py", "a", "os._exit(0)")) == {"lib/core.py": Reason.PYTEST_TAMPERING}
    assert reward_hack_reasons(_add(".git/hooks/pre-commit")) == {"(whole patch)": Reason.GIT_INTERNALS}
