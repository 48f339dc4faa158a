"""The project's one model of a unified diff: files (with kind), hunks (ranges, lines), reversal, canonical text.

Parsing is `unidiff`'s (hunk bodies read by their header counts, so a removed
line `-- note` is never taken for a `--- ` file header); this module turns its
result into plain data every stage reads the same way: the grader
(`patch_policy`, the appliers), the oracle expert (`oec.models.oracle`, a thin
view), task rows (`Task.fix_patch`, the reverse of a SWE-smith bug) and synth.

Every tool that applies a patch reads its headers its own way (`git apply`
and GNU `patch` disagree on quoted names, missing prefixes, ed scripts and
garbage between hunks), so a check made on one reading can be dodged in
another. The grader therefore parses a patch once, here, decides per file
what may be applied, and hands the appliers only `canonical(...)` of the
kept files: consistent `diff --git`/`---`/`+++` headers naming the very path
that was checked, the hunks exactly as parsed.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import unidiff

__all__ = [
    "FileChange",
    "Hunk",
    "HunkLine",
    "PatchParseError",
    "canonical",
    "files_touched",
    "parse_patch_files",
    "reverse_patch",
]

#: extended git header lines kept in the canonical form (the paths of rename/copy lines are rewritten)
_MODE_LINE = re.compile(r"(old mode|new mode|new file mode|deleted file mode) ([0-7]{6})$")
_INDEX_LINE = re.compile(r"index [0-9a-f]{4,64}\.\.[0-9a-f]{4,64}( [0-7]{6})?$")
_SIMILARITY = re.compile(r"(similarity index|dissimilarity index) \d{1,3}%$")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._/+@=,~ -]+")  # as git: spaces stay plain, a tab ends the name
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_REVERSED_MODES = {"new file mode": "deleted file mode", "deleted file mode": "new file mode",
                   "old mode": "new mode", "new mode": "old mode"}
DEV_NULL = "/dev/null"
NO_NEWLINE_MARKER = "\\ No newline at end of file\n"

LineKind = Literal[" ", "-", "+"]
ChangeKind = Literal["create", "delete", "rename", "copy", "modify"]


class PatchParseError(ValueError):
    """The text is not a unified diff the grader can read, or names a path it cannot place."""


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class HunkLine:
    """One line of a hunk body: " " context, "-" removed, "+" added; `text` without its line end.

    A CRLF file's lines keep their "\\r" (the editor and the appliers must see it); `no_newline`
    is a "\\ No newline at end of file" marker after the line: it ends its side's file without one.
    """

    kind: LineKind
    text: str
    no_newline: bool = False

    def render(self) -> str:
        return f"{self.kind}{self.text}\n" + (NO_NEWLINE_MARKER if self.no_newline else "")


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` block: both sides' ranges and its lines in order; `section` is git's text after the ``@@``."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[HunkLine, ...] = ()
    section: str = ""

    def _texts(self, kinds: str) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.kind in kinds)

    @property
    def old_lines(self) -> tuple[str, ...]:
        """The old side: context and removed lines, in order."""
        return self._texts(" -")

    @property
    def new_lines(self) -> tuple[str, ...]:
        """The new side: context and added lines, in order."""
        return self._texts(" +")

    @property
    def removed(self) -> tuple[str, ...]:
        return self._texts("-")

    @property
    def added(self) -> tuple[str, ...]:
        return self._texts("+")

    @property
    def old_no_newline(self) -> bool:
        """The old side's last line ends its file without a newline."""
        return any(line.no_newline for line in self.lines if line.kind in " -")

    @property
    def new_no_newline(self) -> bool:
        return any(line.no_newline for line in self.lines if line.kind in " +")

    def render(self) -> str:
        """The hunk as a patch writes it (ranges always with their lengths)."""
        section = f" {self.section}" if self.section else ""
        head = f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@{section}\n"
        return head + "".join(line.render() for line in self.lines)

    def reversed(self) -> Hunk:
        """The hunk undone: ranges swapped, each added line removed and each removed one added.

        Within each run of changed lines the removed ones come first, as git writes them; a
        no-newline marker stays with its line."""
        flip = {"+": "-", "-": "+", " ": " "}
        out: list[HunkLine] = []
        run: list[HunkLine] = []
        for line in (replace(line, kind=flip[line.kind]) for line in self.lines):
            if line.kind == " ":
                out += _removed_first(run) + [line]
                run = []
            else:
                run.append(line)
        out += _removed_first(run)
        return Hunk(self.new_start, self.new_len, self.old_start, self.old_len, tuple(out), self.section)


def _removed_first(run: list[HunkLine]) -> list[HunkLine]:
    return [line for line in run if line.kind == "-"] + [line for line in run if line.kind == "+"]


@dataclass
class FileChange:
    """One file of a patch: its paths (None for the missing side), modes, and hunks as parsed.

    `raw` is the file's own part of the patch as given (extended headers, hunks, binary data and any
    garbage up to the next file), for a tool that must apply exactly what the patch says; it is empty
    for a change built here (`reverse_patch`)."""

    old_path: str | None
    new_path: str | None
    modes: dict[str, str] = field(default_factory=dict)   # "new file mode" -> "100644", ...
    index: str | None = None
    similarity: list[str] = field(default_factory=list)
    binary: bool = False
    copied: bool = False  # a `copy from/to` (the old path stays), not a rename
    hunks: list[Hunk] = field(default_factory=list)
    raw: str = ""

    @property
    def path(self) -> str:
        """The path the change lands on (the old one for a deletion)."""
        return self.new_path or self.old_path or ""

    @property
    def paths(self) -> list[str]:
        return [p for p in dict.fromkeys((self.old_path, self.new_path)) if p]

    @property
    def is_rename(self) -> bool:
        return self.old_path is not None and self.new_path is not None and self.old_path != self.new_path

    @property
    def added(self) -> bool:
        return self.old_path is None

    @property
    def deleted(self) -> bool:
        return self.new_path is None

    @property
    def kind(self) -> ChangeKind:
        """What happens to the file; a rename or copy may change its content too (see `hunks`)."""
        if self.added:
            return "create"
        if self.deleted:
            return "delete"
        if self.is_rename:
            return "copy" if self.copied else "rename"
        return "modify"

    @property
    def added_lines(self) -> list[str]:
        """The text of every line the change adds, in order."""
        return [text for hunk in self.hunks for text in hunk.added]

    def mode_values(self) -> set[str]:
        values = set(self.modes.values())
        if self.index and " " in self.index:
            values.add(self.index.rsplit(" ", 1)[1])
        return values

    def mode_changed(self) -> bool:
        """The file's mode is set to anything but a plain file's (an executable bit, a symlink, ...)."""
        return "old mode" in self.modes or "new mode" in self.modes or \
            self.modes.get("new file mode", "100644") != "100644"


# ----------------------------------------------------------------------------- reading


def _c_unquote(text: str) -> str:
    """git's C-style quoted path ("a/caf\\303\\251.py") to its text; plain paths unchanged."""
    if not (len(text) >= 2 and text[0] == '"' and text[-1] == '"'):
        return text
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
        elif body[i + 1:i + 2] in _C_ESCAPES:
            out.append(_C_ESCAPES[body[i + 1]])
            i += 2
        elif re.fullmatch(r"[0-7]{3}", body[i + 1:i + 4]):
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            raise PatchParseError(f"bad escape in quoted path {text!r}")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PatchParseError(f"quoted path {text!r} is not UTF-8") from exc


def _effective(raw: str) -> str | None:
    """The path a `-p1` applier writes: the header's name unquoted, its first component (a/, b/) dropped.

    Refuses what no applier should be given: absolute results, `..`, empty or control characters.
    """
    name = _c_unquote(raw.split("\t", 1)[0].rstrip() if not raw.startswith('"') else raw.strip())
    if name == DEV_NULL:
        return None
    parts = name.split("/", 1)
    if len(parts) != 2 or not parts[1]:
        raise PatchParseError(f"path {raw!r} has no a/ or b/ prefix (expected a `git diff` style patch)")
    path = parts[1]
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise PatchParseError(f"path {path!r} holds control characters")
    normal = posixpath.normpath(path)
    if path.startswith("/") or normal.startswith("../") or normal == ".." or "/../" in f"/{path}/":
        raise PatchParseError(f"path {path!r} leaves the repository")
    if normal in (".", ""):
        raise PatchParseError(f"path {raw!r} names no file")
    return normal


def _header_paths(patched: unidiff.PatchedFile) -> tuple[str | None, str | None]:
    old = _effective(patched.source_file) if patched.source_file else None
    new = _effective(patched.target_file) if patched.target_file else None
    info = [line.rstrip("\n") for line in patched.patch_info or []]
    for line in info:  # git's extended headers name the paths of a rename or copy without prefixes
        for key, side in (("rename from ", "old"), ("copy from ", "old"), ("rename to ", "new"), ("copy to ", "new")):
            if line.startswith(key):
                value = _effective("x/" + _c_unquote(line[len(key):]))
                old, new = (value, new) if side == "old" else (old, value)
    if old is None and new is None:
        raise PatchParseError("a file with /dev/null on both sides")
    return old, new


class _TrackedPatchSet(unidiff.PatchSet):
    """unidiff's parse of the lines, noting the line at which each file starts (to cut out its `raw` text).

    unidiff appends a file the moment it reads the line that opens it: ``diff --git``, the ``+++`` of a
    plain diff (whose file starts at the ``---`` before), or a lone ``Binary files ... differ``.
    """

    def __init__(self, lines: list[str]) -> None:
        self.starts: list[int] = []
        self._lines = lines
        self._read = 0
        super().__init__(self._counted())

    def _counted(self) -> Iterator[str]:
        for line in self._lines:
            self._read += 1
            yield line

    def append(self, patched: unidiff.PatchedFile) -> None:
        start = self._read - 1
        if self._lines[start].startswith("+++ ") and start > 0 and self._lines[start - 1].startswith("--- "):
            start -= 1
        self.starts.append(start)
        super().append(patched)


def _hunk(parsed: unidiff.Hunk) -> Hunk:
    lines: list[HunkLine] = []
    for line in parsed:
        if line.line_type == "\\":
            if not lines:
                raise PatchParseError("a 'No newline at end of file' marker before any line of its hunk")
            lines[-1] = replace(lines[-1], no_newline=True)
        else:
            lines.append(HunkLine(line.line_type, line.value.removesuffix("\n")))
    return Hunk(parsed.source_start, parsed.source_length, parsed.target_start, parsed.target_length,
                tuple(lines), parsed.section_header)


def _file_change(patched: unidiff.PatchedFile, raw: str) -> FileChange:
    old, new = _header_paths(patched)
    info = [line.rstrip("\n") for line in patched.patch_info or []]
    change = FileChange(old_path=old, new_path=new, binary=bool(patched.is_binary_file),
                        copied=any(line.startswith("copy from ") for line in info),
                        hunks=[_hunk(hunk) for hunk in patched], raw=raw)
    for line in info:
        if match := _MODE_LINE.match(line):
            change.modes[match.group(1)] = match.group(2)
        elif _INDEX_LINE.match(line):
            change.index = line[len("index "):]
        elif _SIMILARITY.match(line):
            change.similarity.append(line)
    if change.modes.get("new file mode"):
        change.old_path = None
    if change.modes.get("deleted file mode"):
        change.new_path = None
    return change


def parse_patch_files(patch: str) -> list[FileChange]:
    """Every file a unified diff changes, in order. Raises PatchParseError on text that is not one."""
    lines = list(io.StringIO(patch))  # split at "\n" only: a "\r" or form feed stays inside its line
    try:
        patchset = _TrackedPatchSet(lines)
    except Exception as exc:  # unidiff's own error, or any other it trips on with hostile text
        raise PatchParseError(f"not a unified diff: {exc}") from exc
    if patch.strip() and not len(patchset):
        raise PatchParseError("not a unified diff: no file header found")
    ends = patchset.starts[1:] + [len(lines)]
    raws = ["".join(lines[start:end]) for start, end in zip(patchset.starts, ends)]
    return [_file_change(patched, raw if raw.endswith("\n") else raw + "\n") for patched, raw in zip(patchset, raws)]


# ----------------------------------------------------------------------------- writing


def _quoted(path: str) -> str:
    """A path as git writes it in a header: plain when it can be, else C-quoted."""
    if _PLAIN_PATH.fullmatch(path):
        return path
    out = []
    for byte in path.encode("utf-8"):
        ch = chr(byte)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _side(prefix: str, path: str | None) -> str:
    if path is None:
        return DEV_NULL
    quoted = _quoted(path)
    return f'"{prefix}{quoted[1:]}' if quoted.startswith('"') else f"{prefix}{quoted}"


def _file_line(prefix: str, path: str | None) -> str:
    """A ---/+++ name: as in the header, with git's trailing tab when it holds a space (appliers split there)."""
    side = _side(prefix, path)
    return side + "\t" if " " in side and not side.startswith('"') else side


def canonical(changes: list[FileChange]) -> str:
    """The changes as one git-style patch whose headers all name the checked paths."""
    out: list[str] = []
    for change in changes:
        old = change.old_path or change.new_path
        new = change.new_path or change.old_path
        out.append(f"diff --git {_side('a/', old)} {_side('b/', new)}\n")
        for key in ("old mode", "new mode", "deleted file mode", "new file mode"):
            if key in change.modes:
                out.append(f"{key} {change.modes[key]}\n")
        out += [f"{line}\n" for line in change.similarity]
        if change.is_rename:
            kind = "copy" if change.copied else "rename"
            out.append(f"{kind} from {_quoted(change.old_path or '')}\n")
            out.append(f"{kind} to {_quoted(change.new_path or '')}\n")
        if change.index:
            out.append(f"index {change.index}\n")
        if change.hunks:
            out.append(f"--- {_file_line('a/', change.old_path)}\n+++ {_file_line('b/', change.new_path)}\n")
            out += [hunk.render() for hunk in change.hunks]
    return "".join(out)


# ----------------------------------------------------------------------------- questions asked of a patch


def files_touched(patch: str) -> list[str]:
    """Paths a patch touches (the new side; a deletion keeps its old path; both sides of a rename), in order."""
    paths: list[str] = []
    for change in parse_patch_files(patch):
        for path in change.paths:
            if path not in paths:
                paths.append(path)
    return paths


def _reversed_change(change: FileChange) -> FileChange:
    if change.binary:
        raise PatchParseError(f"{change.path}: a binary change cannot be reversed here")
    index = change.index
    if index:
        ids, _, mode = index.partition(" ")
        old, _, new = ids.partition("..")
        index = f"{new}..{old}" + (f" {mode}" if mode else "")
    return FileChange(old_path=change.new_path, new_path=change.old_path,
                      modes={_REVERSED_MODES[key]: value for key, value in change.modes.items()}, index=index,
                      similarity=change.similarity, copied=change.copied,
                      hunks=[hunk.reversed() for hunk in change.hunks])


def reverse_patch(patch: str) -> str:
    """The patch that undoes `patch` (SWE-smith publishes the bug; the fix is its reverse)."""
    return canonical([_reversed_change(change) for change in parse_patch_files(patch)])
