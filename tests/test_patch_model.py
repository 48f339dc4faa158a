"""The project's one patch model (`oec.grading.patch_files`): files and kinds, hunks, reversal, raw text.

Every reader of a diff goes through it (grading, the oracle, synth), so these pin what they all rely on:
hunk bodies are read by their counts, line ends and end-of-file markers survive, and reversing twice is
the identity.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from oec.grading.patch_files import (
    FileChange,
    HunkLine,
    PatchParseError,
    canonical,
    files_touched,
    parse_patch_files,
    reverse_patch,
)
from oec.grading.patch_policy import reward_hack_reasons
from oec.models.oracle import parse_patch
from oec.synth.statement import fix_lines

#: a removed SQL comment and an added line starting with "++": as diff lines they read "--- " and "+++ "
SQL = ("diff --git a/db/schema.sql b/db/schema.sql\n--- a/db/schema.sql\n+++ b/db/schema.sql\n"
       "@@ -1,3 +1,3 @@ CREATE TABLE t\n select 1;\n--- note\n+++ counter\n end;\n")
NEW = ("diff --git a/bin/run.sh b/bin/run.sh\nnew file mode 100755\nindex 0000000..1111111\n--- /dev/null\n"
       "+++ b/bin/run.sh\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+echo hi\n")
GONE = ("diff --git a/old.py b/old.py\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/old.py\n"
        "+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n")
RENAME = ("diff --git a/pkg/a.py b/pkg/b.py\nsimilarity index 90%\nrename from pkg/a.py\nrename to pkg/b.py\n"
          "--- a/pkg/a.py\n+++ b/pkg/b.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n")
BINARY = ("diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\nGIT binary patch\nliteral 5\n"
          "McmZ?wbhEHb\n\nliteral 3\nKcmZ?wbh\n\n")


def test_removed_and_added_lines_that_look_like_file_headers_are_content() -> None:
    """Regression (issue 17): `-- note` removed and `++ counter` added are hunk lines, not a new file."""
    (change,) = parse_patch_files(SQL)
    (hunk,) = change.hunks
    assert (hunk.removed, hunk.added) == (("-- note",), ("++ counter",))
    assert change.added_lines == ["++ counter"]
    assert files_touched(SQL + NEW) == ["db/schema.sql", "bin/run.sh"]
    assert canonical(parse_patch_files(SQL)) == SQL
    assert reverse_patch(reverse_patch(SQL)) == SQL
    (oracle_view,) = parse_patch(SQL)
    assert oracle_view.hunks[0].old_lines == ("select 1;", "-- note", "end;")
    assert fix_lines(SQL) == ["++ counter"]  # synth's leak check sees the added line


def test_kinds_paths_and_modes() -> None:
    changes = parse_patch_files(SQL + NEW + GONE + RENAME + BINARY)
    assert [(c.kind, c.old_path, c.new_path) for c in changes] == [
        ("modify", "db/schema.sql", "db/schema.sql"), ("create", None, "bin/run.sh"), ("delete", "old.py", None),
        ("rename", "pkg/a.py", "pkg/b.py"), ("modify", "logo.png", "logo.png")]
    assert [c.binary for c in changes] == [False, False, False, False, True]
    assert [c.mode_changed() for c in changes] == [False, True, False, False, False]
    copy = RENAME.replace("rename from", "copy from").replace("rename to", "copy to")
    assert parse_patch_files(copy)[0].kind == "copy"
    assert files_touched(copy) == ["pkg/a.py", "pkg/b.py"]


def test_hunks_carry_ranges_sides_and_section() -> None:
    patch = ("diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,3 @@\n a\n+b\n \n"
             "@@ -10 +11 @@ def f():\n-z\n+w\n")
    first, second = parse_patch_files(patch)[0].hunks
    assert (first.old_start, first.old_len, first.new_start, first.new_len) == (1, 2, 1, 3)
    assert (first.old_lines, first.new_lines) == (("a", ""), ("a", "b", ""))  # an empty line is context
    assert (second.old_start, second.old_len, second.new_start, second.new_len, second.section) == \
        (10, 1, 11, 1, "def f():")
    assert second.render() == "@@ -10,1 +11,1 @@ def f():\n-z\n+w\n"


def test_reversal_swaps_sides_and_round_trips() -> None:
    (change,) = parse_patch_files(reverse_patch(RENAME))
    assert (change.kind, change.old_path, change.new_path) == ("rename", "pkg/b.py", "pkg/a.py")
    assert change.hunks[0].removed == ("y = 3",) and change.hunks[0].added == ("y = 2",)
    mixed = ("diff --git a/r.py b/r.py\n--- a/r.py\n+++ b/r.py\n@@ -1,3 +1,3 @@\n-a\n+A\n-b\n+B\n c\n")
    assert reverse_patch(mixed).endswith("@@ -1,3 +1,3 @@\n-A\n-B\n+a\n+b\n c\n")  # removed first, as git
    for patch in (SQL, NEW, GONE, RENAME):
        assert reverse_patch(reverse_patch(patch)) == canonical(parse_patch_files(patch))
    assert reverse_patch(reverse_patch(mixed)).endswith("@@ -1,3 +1,3 @@\n-a\n-b\n+A\n+B\n c\n")
    (created,) = parse_patch_files(reverse_patch(GONE))
    assert created.kind == "create" and created.modes == {"new file mode": "100644"}


def test_reversal_of_a_patch_without_a_final_newline() -> None:
    """The last hunk line of a patch cut without its newline still ends a line when reversed."""
    patch = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-z\n+w"
    assert reverse_patch(patch).endswith("@@ -1,1 +1,1 @@\n-w\n+z\n")
    assert parse_patch(patch)[0].text.endswith("+w\n")


def test_crlf_lines_keep_their_carriage_return() -> None:
    patch = "diff --git a/c.txt b/c.txt\n--- a/c.txt\n+++ b/c.txt\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+c\r\n"
    (hunk,) = parse_patch_files(patch)[0].hunks
    assert hunk.lines == (HunkLine(" ", "a\r"), HunkLine("-", "b\r"), HunkLine("+", "c\r"))
    assert canonical(parse_patch_files(patch)) == patch
    assert parse_patch(patch)[0].kind == "patch"  # the oracle's editor would rewrite the line ends


def test_no_newline_markers_stay_with_their_side() -> None:
    old_side = ("diff --git a/n.py b/n.py\n--- a/n.py\n+++ b/n.py\n@@ -1 +1 @@\n-V = 1\n"
                "\\ No newline at end of file\n+V = 2\n")
    (hunk,) = parse_patch_files(old_side)[0].hunks
    assert (hunk.old_no_newline, hunk.new_no_newline) == (True, False)
    assert hunk.lines[0] == HunkLine("-", "V = 1", no_newline=True)
    back = reverse_patch(old_side)
    assert back.endswith("@@ -1,1 +1,1 @@\n-V = 2\n+V = 1\n\\ No newline at end of file\n")
    (reversed_hunk,) = parse_patch_files(back)[0].hunks
    assert (reversed_hunk.old_no_newline, reversed_hunk.new_no_newline) == (False, True)
    assert reverse_patch(back) == canonical(parse_patch_files(old_side))
    (view,) = parse_patch(old_side)
    assert (view.hunks[0].old_text, view.hunks[0].new_text) == ("V = 1", "V = 2\n")


def test_binary_changes_keep_their_data_in_raw_and_are_not_reversed() -> None:
    changes = parse_patch_files(BINARY + SQL)
    assert changes[0].binary and not changes[0].hunks
    assert changes[0].raw == BINARY  # the literal data, for an applier of the original
    assert changes[1].raw == SQL
    assert reward_hack_reasons(BINARY) == {"logo.png": "binary file"}
    with pytest.raises(PatchParseError, match="binary"):
        reverse_patch(BINARY)


def test_raw_text_is_each_files_own_part_of_the_patch() -> None:
    """Preamble is nobody's; a plain diff's file starts at its `---`; trailing junk stays with its file."""
    plain = "--- a/p.py\n+++ b/p.py\n@@ -1 +1 @@\n-a\n+b\n"
    patch = "From: someone\nSubject: fix\n\n" + SQL + "trailing junk\n" + plain + RENAME
    changes = parse_patch_files(patch)
    assert [c.raw for c in changes] == [SQL + "trailing junk\n", plain, RENAME]
    assert [f.text for f in parse_patch(patch)] == [c.raw for c in changes]


def test_changes_built_here_render_canonically() -> None:
    change = FileChange(old_path=None, new_path="n.txt", modes={"new file mode": "100644"},
                        hunks=parse_patch_files(NEW)[0].hunks)
    assert canonical([change]).startswith("diff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n")


def test_reversed_patch_undoes_the_change_with_git(tmp_path: Path) -> None:
    """Round trip through git: apply a patch with CRLF, end-of-file and header-like lines, then its reverse."""
    def git(*args: str, data: str | None = None) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       input=None if data is None else data.encode())

    files = {"db/schema.sql": "select 1;\n-- note\nend;\n", "c.txt": "a\r\nb\r\n", "n.py": "V = 1"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(text.encode())
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (tmp_path / "db/schema.sql").write_bytes(b"select 1;\n++ counter\nend;\n")
    (tmp_path / "c.txt").write_bytes(b"a\r\nB\r\n")
    (tmp_path / "n.py").write_bytes(b"V = 2\n")
    patch = subprocess.run(["git", "diff"], cwd=tmp_path, check=True, capture_output=True).stdout.decode()
    git("checkout", "-q", "--", ".")
    git("apply", "-", data=canonical(parse_patch_files(patch)))
    git("apply", "-", data=reverse_patch(patch))
    assert {name: (tmp_path / name).read_bytes().decode() for name in files} == files


def test_not_a_diff_is_a_parse_error() -> None:
    assert parse_patch_files("") == [] and parse_patch("") == []
    with pytest.raises(PatchParseError):
        parse_patch_files("just some text\n")
    with pytest.raises(PatchParseError):
        parse_patch_files("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n-a\n")
