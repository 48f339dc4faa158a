"""A unified diff as a list of file changes, parsed with `unidiff`, and written back in one canonical form.

Every tool that applies a patch reads its headers its own way (`git apply`
and GNU `patch` disagree on quoted names, missing prefixes, ed scripts and
garbage between hunks), so a check made on one reading can be dodged in
another. The grader therefore parses a patch once, here, decides per file
what may be applied, and hands the appliers only `canonical(...)` of the
kept files: consistent `diff --git`/`---`/`+++` headers naming the very path
that was checked, the hunks exactly as parsed.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

import unidiff

__all__ = ["FileChange", "PatchParseError", "canonical", "files_touched", "parse_patch_files", "reverse_patch"]

#: extended git header lines kept in the canonical form (the paths of rename/copy lines are rewritten)
_MODE_LINE = re.compile(r"(old mode|new mode|new file mode|deleted file mode) ([0-7]{6})$")
_INDEX_LINE = re.compile(r"index [0-9a-f]{4,64}\.\.[0-9a-f]{4,64}( [0-7]{6})?$")
_SIMILARITY = re.compile(r"(similarity index|dissimilarity index) \d{1,3}%$")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._/+@=,~ -]+")  # as git: spaces stay plain, a tab ends the name
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
DEV_NULL = "/dev/null"


class PatchParseError(ValueError):
    """The text is not a unified diff the grader can read, or names a path it cannot place."""


@dataclass
class FileChange:
    """One file of a patch: its paths (None for the missing side), modes, and hunks as parsed."""

    old_path: str | None
    new_path: str | None
    modes: dict[str, str] = field(default_factory=dict)   # "new file mode" -> "100644", ...
    index: str | None = None
    similarity: list[str] = field(default_factory=list)
    binary: bool = False
    copied: bool = False  # a `copy from/to` (the old path stays), not a rename
    hunks: list[str] = field(default_factory=list)

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

    def mode_values(self) -> set[str]:
        values = set(self.modes.values())
        if self.index and " " in self.index:
            values.add(self.index.rsplit(" ", 1)[1])
        return values


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


def parse_patch_files(patch: str) -> list[FileChange]:
    """Every file a unified diff changes, in order. Raises PatchParseError on text that is not one."""
    try:
        patchset = unidiff.PatchSet(patch)
    except Exception as exc:  # unidiff's own error, or any other it trips on with hostile text
        raise PatchParseError(f"not a unified diff: {exc}") from exc
    if patch.strip() and not len(patchset):
        raise PatchParseError("not a unified diff: no file header found")
    changes = []
    for patched in patchset:
        old, new = _header_paths(patched)
        change = FileChange(old_path=old, new_path=new, binary=bool(patched.is_binary_file),
                            copied=any(line.startswith("copy from ") for line in patched.patch_info or []))
        for line in (raw.rstrip("\n") for raw in patched.patch_info or []):
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
        change.hunks = [str(hunk) for hunk in patched]
        changes.append(change)
    return changes


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
            out += change.hunks
    return "".join(out)


def files_touched(patch: str) -> list[str]:
    """Paths a patch touches (the new side; a deletion keeps its old path; both sides of a rename), in order."""
    paths: list[str] = []
    for change in parse_patch_files(patch):
        for path in change.paths:
            if path not in paths:
                paths.append(path)
    return paths


_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_REVERSED_MODES = {"new file mode": "deleted file mode", "deleted file mode": "new file mode",
                   "old mode": "new mode", "new mode": "old mode"}


def _reverse_hunk(hunk: str) -> str:
    """A hunk undone: the two ranges swapped, each added line removed and each removed line added.

    Within each run of changed lines the removed ones come first, as git writes them; a
    "\\ No newline at end of file" marker stays with the line it follows."""
    header, *lines = hunk.splitlines(keepends=True)
    match = _HUNK_HEADER.match(header.rstrip("\n"))
    if not match:
        raise PatchParseError(f"not a hunk header: {header!r}")
    old_start, old_len, new_start, new_len, section = match.groups()
    out = [f"@@ -{new_start}{',' + new_len if new_len is not None else ''} "
           f"+{old_start}{',' + old_len if old_len is not None else ''} @@{section}\n"]
    items: list[tuple[str, str]] = []  # (kind after reversal, the line with its "no newline" marker)
    for line in lines:
        if line.startswith("\\") and items:
            kind, text = items[-1]
            items[-1] = (kind, text + line)
            continue
        flipped = {"+": "-", "-": "+"}.get(line[:1])
        items.append((flipped, flipped + line[1:]) if flipped else (" ", line))
    removed: list[str] = []
    added: list[str] = []
    for kind, text in items:
        if kind == "-":
            removed.append(text)
        elif kind == "+":
            added.append(text)
        else:
            out.extend(removed + added)
            removed, added = [], []
            out.append(text)
    out.extend(removed + added)
    return "".join(out)


def reverse_patch(patch: str) -> str:
    """The patch that undoes `patch` (SWE-smith publishes the bug; the fix is its reverse)."""
    changes = []
    for change in parse_patch_files(patch):
        if change.binary:
            raise PatchParseError(f"{change.path}: a binary change cannot be reversed here")
        modes = {_REVERSED_MODES[key]: value for key, value in change.modes.items()}
        index = change.index
        if index:
            ids, _, mode = index.partition(" ")
            old, _, new = ids.partition("..")
            index = f"{new}..{old}" + (f" {mode}" if mode else "")
        changes.append(FileChange(old_path=change.new_path, new_path=change.old_path, modes=modes, index=index,
                                  similarity=change.similarity, copied=change.copied,
                                  hunks=[_reverse_hunk(h) for h in change.hunks]))
    return canonical(changes)
