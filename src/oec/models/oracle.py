"""The oracle expert: a privileged model that knows the task's gold patch.

OEC needs an expert that can take over a rollout from ANY state, including
one a student has broken, and whose turns are worth imitating: they become
the student's training targets. So the oracle does not just drop the gold
patch into the tree; it acts like a careful engineer, only through the
agent's own tools (native tool calls, one per completion, with a short
thought):

1. inspect: ``git status --short``, from the repository's top (the agent's
   bash keeps a student's ``cd``);
2. if that shows changes, undo them (restore the named files from HEAD,
   delete the stray ones; ``git reset --hard HEAD`` + ``git clean`` if the
   named restore did not leave a clean tree). The one privileged exception:
   when the conversation shows that an earlier call moved HEAD (a student's
   ``git commit``, ``reset``, branch switch ...), HEAD is no longer the task's
   start, so the inspection adds ``git diff <base> --stat`` and restores (and
   the patch fallback below checks out) from the base commit instead;
3. when the statement names the file and a function on its own (a code span
   that is just a name), read that function at once with
   ``grep -n -w -A 24 'def NAME' FILE``, both copied from the statement;
   otherwise, or when that does not show the change,
   localise from what it can see: ``grep -rn NAME`` for the names the problem
   statement gives (code spans, call-like words), and when no hit lands in a
   file the fix touches, run the existing tests and read the traceback, and
   last list the files; the gold patch only decides which of these leads to
   follow;
4. per file of the gold patch: read down from the lead's line (the ``def``
   grep showed, when there is one above the change) in fixed windows of
   `VIEW_WINDOW` lines until a view shows the change (no lead near: view the
   change's region), then one ``str_replace`` per hunk whose lines the latest
   view shows, quoting that line in its thought (a change that only deletes
   a run of lines deletes them by the numbers the view shows, ``sed -i 'Nd'``;
   ``create`` for new files, ``rm`` for deleted ones); when an edit does not
   apply as expected, view more context and widen it, and when the view does
   not show the expected lines (a student changed the file, or committed a
   change), restore the file and ``git apply`` its part of the gold patch,
   which always ends with the gold content;
5. run the existing tests the task's tests live in;
6. submit.

Every decision is made from the conversation it is handed: the only thing it
reads is the observation of its own previous call (the last ``tool`` message),
so the history before its first call may hold anything a student did. The
per-rollout state (`OracleModel`, made fresh by `OracleProvider.for_task`) is
a script cursor. The script is finite and bounded, and a hard cap on calls
makes the oracle submit no matter what it observes.
"""

from __future__ import annotations

import builtins
import difflib
import json
import keyword
import re
import shlex
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from oec.grading import patch_files as patch_model
from oec.grading.patch_files import FileChange, parse_patch_files
from oec.models.base import Completion, Message, ToolCall, ToolSpec, Usage
from oec.models.registry import ModelOptions, register_backend
from oec.tasks.model import Task

__all__ = [
    "FileDiff",
    "Hunk",
    "OracleModel",
    "OracleProvider",
    "RepoState",
    "oracle_factory",
    "parse_patch",
    "parse_repo_state",
]

ORACLE_NAME = "oracle"
#: lines of extra context shown around a hunk when the oracle views a file with no lead to read from
VIEW_MARGIN = 5
#: lines one view shows when the oracle reads down from a lead (a definition grep found, a traceback line):
#: a fixed window, because where the change ends is what a student cannot see before it reads the code
VIEW_WINDOW = 25
#: windows read down from a lead before the oracle views the change's region directly
MAX_WINDOWS = 3
#: consecutive windows share these lines, so a change near a window's end is shown whole by the next one
WINDOW_OVERLAP = 6
#: extra lines on each side used to make a non-unique old side unique, one round each
WIDEN_MARGINS = (4, 12)

FileKind = Literal["modify", "create", "delete", "patch"]


# ----------------------------------------------------------------------------- the gold patch


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` block: where it starts and both sides' lines (no newline characters)."""

    old_start: int
    new_start: int
    old_lines: tuple[str, ...]
    new_lines: tuple[str, ...]
    old_no_newline: bool = False  # the old side's last line has no newline at end of file
    new_no_newline: bool = False

    def _side(self, lines: tuple[str, ...], no_newline: bool, other_no_newline: bool) -> str:
        text = "\n".join(lines)
        # the newline after the last line matters only when one side lacks it (a "\ No newline" change)
        if lines and not no_newline and other_no_newline:
            text += "\n"
        return text

    def trimmed(self) -> Hunk:
        """The hunk without blank context lines at its edges (an engineer would not quote them).

        Keeps at least one non-blank old line, and the last lines when an end-of-file newline changes.
        """
        old, new, start = list(self.old_lines), list(self.new_lines), self.new_start
        old_start = self.old_start

        def solid(lines: list[str]) -> bool:
            return any(line.strip() for line in lines)

        while len(old) > 1 and new and old[0] == new[0] == "" and solid(old[1:]):
            old, new, start, old_start = old[1:], new[1:], start + 1, old_start + 1
        while (len(old) > 1 and new and old[-1] == new[-1] == "" and solid(old[:-1])
               and not self.old_no_newline and not self.new_no_newline):
            old, new = old[:-1], new[:-1]
        return Hunk(old_start, start, tuple(old), tuple(new), self.old_no_newline, self.new_no_newline)

    def narrowed(self, seen: str) -> Hunk:
        """The hunk cut to its changed lines plus only as much context as makes the old side occur once in
        `seen` (the code the last view showed), growing after and before in turn.

        A diff's three lines of context on each side are what `git` needs, not what an engineer quotes: a
        student imitating the edit copies ~2x fewer tokens. When the rest of the file holds the snippet
        too, the editor says so and the oracle widens the edit again (`_widened_edit`).
        """
        old, new = self.old_lines, self.new_lines
        if self.old_no_newline or self.new_no_newline:
            return self
        same_head = 0
        while same_head < min(len(old), len(new)) and old[same_head] == new[same_head]:
            same_head += 1
        same_tail = 0
        while same_tail < min(len(old), len(new)) - same_head and old[-1 - same_tail] == new[-1 - same_tail]:
            same_tail += 1
        lo, hi, after_first = same_head, len(old) - same_tail, True
        while not (lo < hi and "\n".join(old[lo:hi]).strip() and seen.count("\n".join(old[lo:hi])) == 1):
            can_after, can_before = hi < len(old), lo > 0
            if not (can_after or can_before):
                return self
            if can_after and (after_first or not can_before):
                hi += 1
            else:
                lo -= 1
            after_first = not after_first
        tail_kept = hi - (len(old) - same_tail)
        return Hunk(self.old_start + lo, self.new_start + lo, old[lo:hi], new[lo:len(new) - same_tail + tail_kept])

    @property
    def old_text(self) -> str:
        """The old side (context + removed lines), as `str_replace` expects it."""
        return self._side(self.old_lines, self.old_no_newline, self.new_no_newline)

    @property
    def new_text(self) -> str:
        """The new side (context + added lines)."""
        return self._side(self.new_lines, self.new_no_newline, self.old_no_newline)


@dataclass(frozen=True)
class FileDiff:
    """The part of a unified diff about one file, parsed, plus its text verbatim (for `git apply`)."""

    old_path: str | None  # None for a new file
    new_path: str | None  # None for a deleted file
    text: str
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False
    mode_change: bool = False
    rename: bool = False

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def kind(self) -> FileKind:
        """How the oracle edits it: with the editor when it can, else by applying the diff."""
        if self.binary or self.mode_change or self.rename:
            return "patch"
        if self.old_path is None and self.new_path is not None:
            return "create"
        if self.new_path is None and self.old_path is not None:
            return "delete"
        crlf = any(line.endswith("\r") for h in self.hunks for line in h.old_lines + h.new_lines)
        if not self.hunks or crlf or any(not h.old_lines for h in self.hunks):
            return "patch"  # the editor rewrites line endings, and an empty old side cannot be located
        return "modify"

    @property
    def new_content(self) -> str:
        """A new file's whole text (meaningful for kind == "create")."""
        lines = [line for h in self.hunks for line in h.new_lines]
        no_newline = bool(self.hunks) and self.hunks[-1].new_no_newline
        return "\n".join(lines) + ("" if no_newline or not lines else "\n")


def _oracle_hunk(hunk: patch_model.Hunk) -> Hunk:
    return Hunk(hunk.old_start, hunk.new_start, hunk.old_lines, hunk.new_lines,
                hunk.old_no_newline, hunk.new_no_newline)


def _file_diff(change: FileChange) -> FileDiff:
    """The oracle's view of one file of the project's patch model (`oec.grading.patch_files`)."""
    return FileDiff(old_path=change.old_path, new_path=change.new_path, text=change.raw,
                    hunks=tuple(_oracle_hunk(h) for h in change.hunks), binary=change.binary,
                    mode_change=change.mode_changed(), rename=change.kind in ("rename", "copy"))


def parse_patch(patch: str) -> list[FileDiff]:
    """The files of a unified (git) diff as the oracle edits them, in order.

    Raises `PatchParseError` (a ValueError) on text that is not a diff.
    """
    return [_file_diff(change) for change in parse_patch_files(patch)]


# ----------------------------------------------------------------------------- reading observations


_STATUS_LINE = re.compile(r"^([ MTADRCU?!]{2}) (\S.*)$")
_STAT_LINE = re.compile(r"^ (\S.*?)\s+\|\s+(?:\d+|Bin\b)")
_STAT_SUMMARY = re.compile(r"^\s*\d+ files? changed")
_CLEAN_MARKERS = ("", "(no output)")


@dataclass
class RepoState:
    """What ``git status --short`` + ``git diff <base> --stat`` said, sorted for undoing it."""

    status: list[tuple[str, str]] = field(default_factory=list)  # (XY, path) relative to HEAD
    stat: list[str] = field(default_factory=list)  # paths that differ from the base commit
    unknown: list[str] = field(default_factory=list)  # lines that are neither: errors, warnings

    @property
    def untracked(self) -> list[str]:
        return [p for xy, p in self.status if xy == "??"]

    @property
    def dirty(self) -> bool:
        """Anything differs from the commit compared with (a status line, or a stat line)."""
        return bool(self.stat or self.status)

    @property
    def ambiguous(self) -> bool:
        """Paths that cannot be named safely (renames, quoting, abbreviated stat paths, odd lines)."""
        paths = [p for _, p in self.status] + self.stat
        return bool(self.unknown) or any(
            " -> " in p or "=>" in p or p.startswith('"') or "..." in p for p in paths)


def parse_repo_state(observation: str) -> RepoState:
    """Sort the inspect command's output into status lines, stat lines and anything else."""
    state = RepoState()
    for line in observation.split("\n"):
        if not line.strip() or line.strip() in _CLEAN_MARKERS or _STAT_SUMMARY.match(line):
            continue
        if (stat := _STAT_LINE.match(line)) and not _STATUS_LINE.match(line):
            state.stat.append(stat.group(1).strip())
        elif status := _STATUS_LINE.match(line):
            state.status.append((status.group(1), status.group(2).strip()))
        elif stat:
            state.stat.append(stat.group(1).strip())
        else:
            state.unknown.append(line)
    return state


_VIEW_LINE = re.compile(r"^ *(\d+)\t(.*)$")
_GREP_CONTEXT_LINE = re.compile(r"^(\d+)[:-](.*)$")


def _viewed_lines(observation: str) -> dict[int, str]:
    """Line number -> text from the editor's ``cat -n`` style view, or from ``grep -n -A`` on one file
    (``12:match``, ``13-context``)."""
    found: dict[int, str] = {}
    for line in observation.split("\n"):
        if match := _VIEW_LINE.match(line) or _GREP_CONTEXT_LINE.match(line):
            found[int(match.group(1))] = match.group(2)
    return found


_GREP_HIT = re.compile(r"^(?:\./)?([^:\n]+\.py):(\d+):(.*)$", re.MULTILINE)
_DEFINES = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s")


def _grep_hits(observation: str | None) -> dict[str, dict[int, str]]:
    """Path -> line number -> text, from ``grep -rn`` output (``./path:line:text``)."""
    hits: dict[str, dict[int, str]] = {}
    for match in _GREP_HIT.finditer(observation or ""):
        hits.setdefault(match.group(1), {})[int(match.group(2))] = match.group(3)
    return hits


def _trace_lines(observation: str | None, path: str) -> list[int]:
    """Line numbers a test run's output points at in `path` (``path:12:`` or ``File ".../path", line 12``)."""
    pattern = re.compile(re.escape(path) + r'(?::|", line )(\d+)')
    return [int(m.group(1)) for m in pattern.finditer(observation or "")]


def _shown_at(observation: str | None, lines: tuple[str, ...]) -> int | None:
    """The first line number where the editor's view in `observation` shows `lines` in a row, else None."""
    viewed = _viewed_lines(observation or "")
    for start in sorted(viewed):
        if all(viewed.get(start + i) == line for i, line in enumerate(lines)):
            return start
    return None


_CODE_SPAN = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_NAME_SPAN = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{2,})(?:\(|\.[A-Za-z_])")
_IMPORTED = re.compile(r"^[>.\s]*(?:from|import)\s+([A-Za-z_]\w*)", re.MULTILINE)
#: what a code span holds that is not a name to search for: string literals, a traceback's header
_NOT_NAMES = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'|Traceback \(most recent call last\)")
_PLAIN = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls", "from", "import", "python"}


def _statement_names(statement: str) -> list[str]:
    """Code names the problem statement gives, in its order: words in code spans and call-like words."""
    spans = " ".join(_NOT_NAMES.sub(" ", m.group(0)) for m in _CODE_SPAN.finditer(statement))
    found = _NAME.findall(spans) + _CALL.findall(statement)
    modules = set(_IMPORTED.findall(statement))  # a package name leads everywhere at once
    return list(dict.fromkeys(n for n in found if n not in _PLAIN and n not in modules))


def _named_functions(statement: str) -> list[str]:
    """Functions the statement names on their own (a code span that is just a name, dotted or not: its last
    part), in its order; test names are what fails, not where the bug is."""
    names = (m.group(1).rsplit(".", 1)[-1] for m in _NAME_SPAN.finditer(statement))
    return list(dict.fromkeys(n for n in names if not n.startswith("test") and n not in _PLAIN))


def _edit_shown(hunk: Hunk, observation: str | None) -> tuple[Hunk, int] | None:
    """The edit to make (the hunk narrowed to what the view showed) and the line where the view shows its old
    side, or None when the view does not show it."""
    viewed = _viewed_lines(observation or "")
    if not viewed:
        return None
    edit = hunk.narrowed("\n".join(viewed[n] for n in sorted(viewed)))
    at = _shown_at(observation, edit.old_lines)
    return None if at is None else (edit, at)


def _deleted_lines(edit: Hunk, at: int) -> str:
    """``N`` or ``N,M`` when the edit only deletes a run of lines, the view having shown its old side at line
    `at`; else "". Deleting by the line numbers the view shows is the edit a student can copy most surely:
    a `str_replace` that deletes must quote the next line too and leave it in, which small students get wrong
    (they write new_str == old_str)."""
    removed, added, first = _changed_lines(edit.old_lines, edit.new_lines)
    if added or not removed or edit.old_no_newline or edit.new_no_newline:
        return ""
    if edit.old_lines[:first] + edit.old_lines[first + len(removed):] != edit.new_lines:
        return ""  # removed lines that are not one run
    start, end = at + first, at + first + len(removed) - 1
    return str(start) if start == end else f"{start},{end}"


def _failed_view(observation: str | None) -> bool:
    """The editor refused the view (a range past the file's end): reading further down cannot help."""
    return observation is None or observation.startswith("ERROR")


def _edited(observation: str | None) -> bool:
    return observation is not None and "has been edited" in observation and not observation.startswith("ERROR")


def _created(observation: str | None) -> bool:
    return observation is not None and observation.startswith("File created successfully")


def _failed_bash(observation: str | None) -> bool:
    return observation is None or "[exit code " in observation or "[command timed out" in observation


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class _Act:
    thought: str
    tool: str
    arguments: dict[str, Any]


_Script = Generator[_Act, "str | None", None]


def _q(path: str) -> str:
    return shlex.quote(path)


def _heredoc_delimiter(text: str) -> str:
    delim = "OEC_PATCH"
    while delim in text:
        delim += "_"
    return delim


def _test_files(task: Task) -> list[str]:
    """Existing test files to run: those test_patch changes, else the files of the deciding test ids.

    Files test_patch creates do not exist yet (the hidden tests), so they are left out.
    """
    changed = parse_patch(task.test_patch) if task.test_patch.strip() else []
    created = {f.new_path for f in changed if f.old_path is None}
    existing = [f.old_path for f in changed if f.old_path is not None and f.new_path is not None]
    if existing:
        return list(dict.fromkeys(p for p in existing if p))
    named = [t.split("::")[0] for t in task.FAIL_TO_PASS + task.PASS_TO_PASS if "::" in t]
    return list(dict.fromkeys(p for p in named if p not in created))


#: greps for names per file before the oracle falls back to the test run and the file list
MAX_GREPS = 3


def _script_bound(files: list[FileDiff]) -> int:
    """Most calls the script can make: inspect + 2 restores + per file (leads, edits, fallback) + tests + submit."""
    per_file = 0
    for f in files:
        per_hunk = 2 + 2 * len(WIDEN_MARGINS)  # a view, the edit, then a view and a retry per widening round
        leads = MAX_GREPS + 2  # greps, the test run, the file list
        per_file += 2 if f.kind in ("create", "patch") else leads + 1 + per_hunk * len(f.hunks)
    return 1 + 2 + per_file + 1 + 1


class OracleModel:
    """One rollout's oracle: a native tool-calling Model that replays the gold patch as an engineer would.

    `complete` reads only the last ``tool`` message (its previous action's
    observation) and advances a script; calling it again with the same
    messages (a retry) returns the same completion.
    """

    native_tools = True

    def __init__(self, task: Task, *, max_calls: int | None = None, name: str = ORACLE_NAME) -> None:
        if not task.patch.strip():
            raise ValueError(f"{task.instance_id}: the oracle needs the task's gold patch, and it is empty")
        self.name = name
        self.task = task
        # a SWE-smith row's start commit is made in its container: the one root commit there is the base
        self.base = task.base_commit or '"$(git rev-list --max-parents=0 HEAD | tail -n 1)"'
        self.files = parse_patch(task.fix_patch)
        if not self.files:
            raise ValueError(f"{task.instance_id}: the gold patch names no file")
        #: the script can never run past this bound, so by default the cap is only a backstop
        self.max_calls = max_calls if max_calls is not None else _script_bound(self.files)
        if self.max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.calls = 0
        self._script: _Script | None = None
        self._last: tuple[int, Completion] | None = None
        self._done = False
        self._tests_passed: bool | None = None  # None: no test run (yet)
        self._names = _statement_names(task.problem_statement)
        self._greps: dict[str, dict[str, dict[int, str]]] = {}  # name grepped -> path -> line -> text
        self._tests_run = False
        #: what the tree is compared with and restored from: HEAD, unless the history shows a student moved it
        self.ref = "HEAD"

    # -- Model protocol

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> Completion:
        """The next action, decided from the observation of the previous one.

        `tools` is ignored: the oracle only ever calls bash, str_replace_editor and submit.
        """
        started = time.perf_counter()
        if self._last is not None and self._last[0] == len(messages):
            return self._last[1]  # the same conversation again: a retry, not a new turn
        if self._script is None and _history_moved(messages):
            self.ref = self.base  # commits on top of the task's start: only the base commit undoes them
        act = self._next(_last_observation(messages) if self._script is not None else None)
        self.calls += 1
        call = ToolCall(id=f"oracle_{self.calls}", name=act.tool, arguments=act.arguments)
        prompt_chars = sum(len(m.content) + sum(len(json.dumps(c.arguments)) for c in m.tool_calls)
                           for m in messages)
        completion = Completion(
            text=act.thought,
            tool_calls=[call],
            usage=Usage(prompt_tokens=prompt_chars // 4,
                        completion_tokens=(len(act.thought) + len(json.dumps(act.arguments))) // 4,
                        cost_usd=0.0),
            latency_s=time.perf_counter() - started,
            model=self.name,
            finish_reason="tool_calls",
        )
        self._last = (len(messages), completion)
        return completion

    def _next(self, observation: str | None) -> _Act:
        if self.calls >= self.max_calls - 1 and not self._done:
            self._done = True
            return _Act("I have used up my budget of calls; submitting what I have.", "submit", {})
        if not self._done:
            try:
                if self._script is None:
                    self._script = self._plan()
                    return next(self._script)
                return self._script.send(observation)
            except StopIteration:
                self._done = True
        if self._tests_passed is None:
            return _Act("The fix is in place; submitting.", "submit", {})
        if self._tests_passed:
            return _Act("The fix is in place and the tests pass; submitting.", "submit", {})
        return _Act("The fix matches the intended change, though the test run did not pass cleanly; submitting.",
                    "submit", {})

    # -- the script: each `yield` is one tool call; it receives that call's observation

    def _plan(self) -> _Script:
        # a student may have left the shell in a subdirectory: every later command is relative to the top
        inspect = 'cd "$(git rev-parse --show-toplevel)" && git status --short'
        thought = "Let me first go to the repository's top and check whether the working tree has uncommitted changes."
        if self.ref != "HEAD":
            inspect += f" && git diff {self.ref} --stat"
            thought = ("Earlier in this session the history was changed (a commit, reset or branch switch); let me "
                       "go to the repository's top and compare the tree with the commit the task started from.")
        obs = yield _Act(thought, "bash", {"command": inspect})
        yield from self._restore(obs)
        for diff in self.files:
            yield from self._apply(diff)
        tests = _test_files(self.task)
        if tests:
            command = shlex.join(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests])
            obs = yield _Act("Now run the existing tests to check the fix and catch regressions.",
                             "bash", {"command": command})
            self._tests_passed = not _failed_bash(obs)

    def _restore(self, observation: str | None) -> _Script:
        """Undo whatever the tree holds beyond the base commit, by name when the listing allows."""
        base = self.ref
        state = parse_repo_state(observation or "[no observation]")
        if not state.dirty and not state.unknown and not _failed_bash(observation):
            return
        robust = f"git reset -q --hard {base} && git clean -fdq && git status --short"
        robust_act = _Act(f"I'll reset the tree to {self._ref_words} and remove untracked files, "
                          "so the fix starts from a clean state.", "bash", {"command": robust})
        listed = {p for _, p in state.status}
        committed = [p for p in state.stat if p not in listed]  # differs from base but not from HEAD
        if state.ambiguous or committed or _failed_bash(observation):
            # commits since base (files may not exist there) or names that cannot be quoted back safely
            yield robust_act
            return
        added = [p for xy, p in state.status if xy[0] == "A"]
        tracked = [p for xy, p in state.status if xy != "??" and xy[0] != "A"]
        untracked = state.untracked
        parts = []
        if tracked:
            parts.append(f"git checkout -q {base} -- " + " ".join(_q(p) for p in tracked))
        if added:
            parts.append("git rm -rfq -- " + " ".join(_q(p) for p in added))
        if untracked:
            parts.append("rm -rf -- " + " ".join(_q(p) for p in untracked))
        parts += ["git status --short"] + ([f"git diff {base} --stat"] if base != "HEAD" else [])
        listing = tracked + added + untracked
        names = ", ".join(listing[:5]) + (f" and {len(listing) - 5} more" if len(listing) > 5 else "")
        obs = yield _Act(f"The listing shows leftover changes ({names}). I'll restore the changed files from "
                         f"{self._ref_words} and remove the new ones, so I start from a clean tree.",
                         "bash", {"command": " && ".join(parts)})
        after = parse_repo_state(obs or "")
        leftover = after.dirty if base == "HEAD" else after.stat or after.untracked  # vs base: HEAD may differ
        if _failed_bash(obs) or after.unknown or leftover:
            yield robust_act

    @property
    def _ref_words(self) -> str:
        return "the last commit" if self.ref == "HEAD" else "the commit the task started from"

    def _apply(self, diff: FileDiff) -> _Script:
        """Bring one file to its gold content."""
        path = diff.path
        if diff.kind == "delete":
            obs = yield _Act(f"{path} is no longer needed; remove it.", "bash", {"command": f"rm -f -- {_q(path)}"})
            if _failed_bash(obs):
                yield self._patch_act(diff, "Removing it failed; let me apply the deletion as a patch.")
            return
        if diff.kind == "create":
            obs = yield _Act(f"Create {path}.", "str_replace_editor",
                             {"command": "create", "path": path, "file_text": diff.new_content})
            if not _created(obs):
                yield self._patch_act(diff, f"Creating {path} did not work as expected; "
                                            "I'll write it by applying the change as a patch.")
            return
        if diff.kind == "patch":
            yield self._patch_act(diff, f"The change to {path} is not a plain text edit; I'll apply it as a patch.")
            return
        hunks = [h.trimmed() for h in diff.hunks]
        obs = yield from self._read_definition(path)
        lead, lines = ("", {}) if _edit_shown(hunks[0], obs) else (yield from self._locate(path))
        total = len(hunks)
        for number, hunk in enumerate(hunks, 1):
            where = f" (change {number} of {total})" if total > 1 else ""
            shown = _edit_shown(hunk, obs)
            if shown is None:
                obs = yield from self._read_to(path, hunk, lead if number == 1 else "", lines)
                shown = _edit_shown(hunk, obs)
            if shown is None:
                yield self._patch_act(diff, f"The view does not show the code I expected in {path} (it has been "
                                            "changed); I'll restore the file and apply the change to it as a patch.")
                return
            edit, at = shown
            if lines_gone := _deleted_lines(edit, at):
                obs = yield _Act(_describe(path, edit, where, at), "bash",
                                 {"command": f"sed -i {_q(lines_gone + 'd')} {_q(path)}"})
                if not _failed_bash(obs):
                    continue
            else:
                obs = yield _Act(_describe(path, edit, where, at), "str_replace_editor",
                                 {"command": "str_replace", "path": path,
                                  "old_str": edit.old_text, "new_str": edit.new_text})
                if _edited(obs) or (yield from self._widened_edit(path, hunk, where, obs)):
                    continue
            yield self._patch_act(diff, f"The edit to {path} did not apply as expected; I'll restore the file "
                                        "and apply the whole change to it as a patch.")
            return

    def _read_definition(self, path: str) -> Generator[_Act, str | None, str | None]:
        """When the statement names the file and a function: grep the function's definition in that file with
        the lines after it, one call that a student can copy from the statement (no path or line number to
        carry over from a search). Returns what it showed, or None when the statement names neither."""
        functions = _named_functions(self.task.problem_statement)
        if path not in self.task.problem_statement or not functions:
            return None
        name = functions[0]
        command = f"grep -n -w -A {VIEW_WINDOW - 1} {_q('def ' + name)} {_q(path)}"
        return (yield _Act(f"The issue names `{name}` and {path}; let me read the function's definition there.",
                           "bash", {"command": command}))

    def _locate(self, path: str) -> Generator[_Act, str | None, tuple[str, dict[int, str]]]:
        """Find `path` from what can be seen: grep the statement's names, else the tests' traceback, else a listing.

        Returns the lead (how the file was found, for the thoughts) and the lines it points at (number -> the
        text grep showed there, "" when the lead shows no text).
        """
        for name, hits in self._greps.items():
            if path in hits:
                return f"grep showed `{name}` in {path}", hits[path]
        for name in self._grep_order(path)[:MAX_GREPS]:
            obs = yield _Act(f"The issue mentions `{name}`; let me find where it is defined and used.",
                             "bash", {"command": f"grep -rn {_q(name)} --include=*.py ."})
            self._greps[name] = _grep_hits(obs)
            if path in self._greps[name]:
                return f"grep showed `{name}` in {path}", self._greps[name][path]
        tests = _test_files(self.task)
        if tests and not self._tests_run:
            self._tests_run = True
            command = shlex.join(["python", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests])
            obs = yield _Act("The names in the issue did not lead me to the code; let me run the existing "
                             "tests and read the traceback.", "bash", {"command": command})
            if lines := _trace_lines(obs, path):
                return f"the traceback points at {path}", dict.fromkeys(lines, "")
        yield _Act("Let me list the project's files to find the module the issue is about.",
                   "bash", {"command": "git ls-files"})
        return f"the file list shows {path}, the module the issue is about", {}

    def _grep_order(self, path: str) -> list[str]:
        """The statement's names not grepped yet, those the change's text mentions first (the gold picks the lead)."""
        diff = next((f.text for f in self.files if f.path == path), "")
        text = "\n".join(line for line in diff.split("\n") if not line.startswith("+"))  # what grep can find now
        fresh = [n for n in self._names if n not in self._greps]

        def rank(name: str) -> int:
            word = re.escape(name)
            if re.search(rf"\b(?:def|class)\s+{word}\b", text):
                return 0
            return 1 if re.search(rf"\b{word}\b", text) else 2

        return sorted(fresh, key=rank)

    def _read_to(self, path: str, hunk: Hunk, lead: str,
                 lines: dict[int, str]) -> Generator[_Act, str | None, str | None]:
        """Read down from the lead's line in fixed windows until a view shows the change; returns that view.

        The lead's line is a definition grep showed when one lies above the change (a student's rule: read the
        function from its `def`), else the nearest lead line above it. The gold patch only picks which of the
        lines the lead showed to start from; how far to read is the same for every task. With no lead line
        near, the oracle views the change's region, as before.
        """
        changed = hunk.new_start + _changed_lines(hunk.old_lines, hunk.new_lines)[2]  # its first changed line
        near = [n for n in lines if changed - 40 <= n <= changed]
        if not (lead and near):
            return (yield self._view_act(path, hunk, lead))
        defs = [n for n in near if _DEFINES.match(lines[n])]
        top = max(defs or near)
        text = lines[top].strip()
        thought = (f"{lead}: line {top} is `{text[:100]}`; let me read the code from there." if text
                   else f"{lead} (line {top}); let me read the code from there.")
        obs: str | None = None
        for _ in range(MAX_WINDOWS):
            obs = yield _Act(thought, "str_replace_editor",
                             {"command": "view", "path": path, "view_range": [top, top + VIEW_WINDOW - 1]})
            if _edit_shown(hunk, obs) is not None or _failed_view(obs):
                return obs
            top += VIEW_WINDOW - WINDOW_OVERLAP
            thought = f"The code goes on past that view; let me read on from line {top}."
        return (yield self._view_act(path, hunk, ""))

    def _view_act(self, path: str, hunk: Hunk, lead: str) -> _Act:
        """View the hunk's region (no lead line to read down from)."""
        start, end = _around(hunk, VIEW_MARGIN)
        why = f"{lead}; let me read the relevant part." if lead else f"Let me look at the next part of {path}."
        return _Act(why[0].upper() + why[1:], "str_replace_editor",
                    {"command": "view", "path": path, "view_range": [start, end]})

    def _widened_edit(self, path: str, hunk: Hunk, where: str, obs: str | None) -> Generator[_Act, str | None, bool]:
        """After a "multiple occurrences" error: view around the spot, retry with that context; True if edited."""
        for margin in WIDEN_MARGINS:
            if obs is None or "Multiple occurrences" not in obs or hunk.old_no_newline != hunk.new_no_newline:
                return False
            obs = yield _Act(f"That snippet occurs more than once in {path}; let me view more context "
                             "around the intended spot to make the edit unique.", "str_replace_editor",
                             {"command": "view", "path": path, "view_range": _around(hunk, margin)})
            widened = _widen(hunk, _viewed_lines(obs or ""), margin)
            if widened is None:
                return False
            obs = yield _Act(f"The view shows lines {hunk.new_start - margin}-{hunk.new_start + len(hunk.old_lines) - 1 + margin} "
                             f"of {path}; retry the edit{where} with those surrounding lines.", "str_replace_editor",
                             {"command": "str_replace", "path": path, "old_str": widened[0], "new_str": widened[1]})
            if _edited(obs):
                return True
        return False

    def _patch_act(self, diff: FileDiff, thought: str) -> _Act:
        """The robust fallback: this file back to base (or gone), then its part of the gold patch applied."""
        base = self.ref
        steps = []
        if diff.old_path is not None:
            steps.append(f"git checkout -q {base} -- {_q(diff.old_path)}")
        if diff.new_path is not None and diff.new_path != diff.old_path:
            steps.append(f"rm -rf -- {_q(diff.new_path)}")
        delim = _heredoc_delimiter(diff.text)
        paths = " ".join(_q(p) for p in dict.fromkeys(p for p in (diff.old_path, diff.new_path) if p))
        steps.append(f"git apply --whitespace=nowarn <<'{delim}' && git status --short -- {paths}")
        return _Act(thought, "bash", {"command": " && ".join(steps) + f"\n{diff.text}{delim}"})


def _describe(path: str, hunk: Hunk, where: str, shown: int) -> str:
    """A thought naming the evidence (the viewed line) and the edit: the changed line when there is one."""
    removed, added, first = _changed_lines(hunk.old_lines, hunk.new_lines)
    if removed:
        seen = f"The view shows line {shown + first} of {path}: `{removed[0].strip()[:100]}`. "
    else:
        seen = f"The view shows lines {shown}-{shown + len(hunk.old_lines) - 1} of {path}. "
    return seen + _edit_words(path, removed, added, where)


def _changed_lines(old: Sequence[str], new: Sequence[str]) -> tuple[list[str], list[str], int]:
    """(lines removed, lines added, index in `old` of the first removed) by position, not by membership:
    a removed `return x` that also appears further down is still removed."""
    removed: list[str] = []
    added: list[str] = []
    first = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if not removed and i2 > i1:
            first = i1
        removed += old[i1:i2]
        added += new[j1:j2]
    return removed, added, first


def _edit_words(path: str, removed: list[str], added: list[str], where: str) -> str:
    if len(removed) == 1 and len(added) == 1 and max(len(removed[0]), len(added[0])) <= 100:
        return f"In {path}{where}, change `{removed[0].strip()}` to `{added[0].strip()}`."
    if not removed and added:
        return f"In {path}{where}, add {len(added)} line{'s' if len(added) > 1 else ''}."
    if removed and not added:
        return f"In {path}{where}, remove {len(removed)} line{'s' if len(removed) > 1 else ''}."
    return f"Update {path}{where}: rewrite {len(removed)} line{'s' if len(removed) != 1 else ''} " \
           f"as {len(added)}."


def _around(hunk: Hunk, margin: int) -> list[int]:
    """A view range over the hunk's old side where it sits now (earlier hunks applied), plus a margin.

    `new_start` is that place: a hunk's start in the new file depends only on the hunks before it.
    """
    start = hunk.new_start if hunk.new_start > 0 else 1
    return [max(1, start - margin), start + max(len(hunk.old_lines), 1) - 1 + margin]


def _widen(hunk: Hunk, viewed: dict[int, str], margin: int) -> tuple[str, str] | None:
    """Old and new side grown by the viewed lines around the hunk; None unless the view confirms the spot."""
    start = hunk.new_start
    span = range(start, start + len(hunk.old_lines))
    if any(viewed.get(n) != line for n, line in zip(span, hunk.old_lines)):
        return None
    before = [viewed[n] for n in range(start - margin, start) if n in viewed]
    after_numbers = range(span.stop, span.stop + margin)
    after = []
    for n in after_numbers:  # stop at the first gap (the end of the file or of the view)
        if n not in viewed:
            break
        after.append(viewed[n])
    if not before and not after:
        return None
    return ("\n".join([*before, *hunk.old_lines, *after]), "\n".join([*before, *hunk.new_lines, *after]))


_MOVES_HISTORY = re.compile(r"\bgit\s+(?:-\S+\s+)*(?:commit|reset|rebase|merge|cherry-pick|am|revert|pull|switch|"
                            r"checkout\s+(?:-q\s+)?-[bB])\b")


def _history_moved(messages: list[Message]) -> bool:
    """Whether an earlier call in the conversation (a student's) ran a git command that moves HEAD."""
    calls = (json.dumps(c.arguments) for m in messages if m.role == "assistant" for c in m.tool_calls)
    texts = (m.content for m in messages if m.role == "assistant")
    return any(_MOVES_HISTORY.search(text) for text in (*calls, *texts))


def _last_observation(messages: list[Message]) -> str | None:
    """The environment's answer to the previous call, or None when the conversation does not end with one."""
    if messages and messages[-1].role == "tool":
        return messages[-1].content
    return None


# ----------------------------------------------------------------------------- provider and registration


class OracleProvider:
    """Hands each rollout a fresh `OracleModel` for its task (the spec is plain ``oracle``)."""

    spec = ORACLE_NAME

    def __init__(self, max_calls: int | None = None) -> None:
        self.max_calls = max_calls

    def for_task(self, task: Task) -> OracleModel:
        return OracleModel(task, max_calls=self.max_calls)

    def __repr__(self) -> str:
        return f"OracleProvider(max_calls={self.max_calls!r})"


def oracle_factory(model: str, options: ModelOptions | None = None) -> OracleProvider:
    """Registry factory for the bare spec ``oracle``: no model name; the HTTP options do not apply to it."""
    if model.strip():
        raise ValueError(f"model spec 'oracle:{model}': the oracle takes no model name; use plain 'oracle'")
    if options is not None and options.native_tools is False:
        raise ValueError("the oracle speaks native tool calls only: use --expert-format native or auto")
    return OracleProvider()


register_backend(ORACLE_NAME, oracle_factory)
