"""Candidate bugs of one repository: its functions x the families' sites, in a seeded order, deduplicated.

Source files are the Python files of the clean commit that are not tests
(no `test_*.py`, `*_test.py`, `conftest.py`, nothing under a `tests`/`test`
folder) nor packaging or docs (`setup.py`, `docs/`, ...). Each top-level
function and each method (nested functions belong to the function around
them) is a unit; every (kind, site) of every unit is a candidate.

The order is seeded and spread out: sites are shuffled within each
(function, kind), kinds are interleaved within a function, and functions are
interleaved round-robin, so the first N candidates touch as many functions
and kinds as N allows. Candidates are made lazily in that order: a
candidate's file is only re-generated when it is reached.

Two candidates that leave the same file behind are the same bug: the second
is dropped (`duplicate`). A candidate's id is a hash of its file's path and
new content, so it is the same in every run, whatever the seed or --max.
"""

from __future__ import annotations

import difflib
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from oec.synth.modifiers import KINDS, apply_kind, count_sites

__all__ = ["Candidate", "FunctionUnit", "find_functions", "generate", "is_source_file", "unified_diff"]

_SKIP_DIRS = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "bench",
              "scripts", "tools", ".github", "build", "dist", "site-packages", "node_modules"}
_SKIP_FILES = {"setup.py", "conftest.py", "noxfile.py", "tasks.py", "fabfile.py", "__main__.py", "_version.py",
               "version.py"}


def is_source_file(path: str) -> bool:
    """A Python file whose functions may get bugs: not a test, fixture, packaging or docs file."""
    parts = PurePosixPath(path).parts
    name = parts[-1]
    if not name.endswith(".py") or name in _SKIP_FILES:
        return False
    if name.startswith("test_") or name.endswith("_test.py") or name == "tests.py":
        return False
    return not any(part in _SKIP_DIRS or part.startswith(".") for part in parts[:-1])


@dataclass
class FunctionUnit:
    """One function (or method) of one file: the node inside the parsed module, and where it starts."""

    path: str
    qualname: str
    node: cst.FunctionDef
    line: int


class _Functions(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str] = []
        self.depth = 0
        self.found: list[tuple[str, cst.FunctionDef]] = []

    def visit_ClassDef(self, node):
        if self.depth:
            return False  # a class inside a function belongs to that function
        self.classes.append(node.name.value)

    def leave_ClassDef(self, original_node):
        self.classes.pop()

    def visit_FunctionDef(self, node):
        if self.depth == 0:
            self.found.append((".".join([*self.classes, node.name.value]), node))
        self.depth += 1

    def leave_FunctionDef(self, original_node):
        self.depth -= 1


def find_functions(path: str, module: cst.Module) -> tuple[cst.Module, list[FunctionUnit]]:
    """The module's top-level functions and methods, in file order, with the line of each `def`.

    Returns the module the units' nodes belong to (a copy of `module`): replace nodes in that one."""
    wrapper = MetadataWrapper(module)
    positions = wrapper.resolve(PositionProvider)
    visitor = _Functions()
    wrapper.module.visit(visitor)
    units = [FunctionUnit(path, qualname, node, positions[node].start.line) for qualname, node in visitor.found]
    return wrapper.module, units


def unified_diff(path: str, before: str, after: str) -> str:
    """The change as a unified diff (three lines of context), a/ and b/ paths like git's."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _lines_changed(before: str, after: str) -> int:
    """Lines removed plus lines added."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    return sum(max(i2 - i1, 0) + max(j2 - j1, 0) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


@dataclass
class Candidate:
    """One bug: the file's new content, where and what kind, and the diff from the clean file."""

    id: str
    kind: str
    path: str
    function: str
    line: int
    site: int
    content: str                 # the file with the bug
    diff: str                    # clean -> bug
    lines_changed: int
    original: str = field(repr=False, default="")  # the clean file


@dataclass
class _Slot:
    unit: FunctionUnit
    kind: str
    site: int
    module: cst.Module


def _schedule(units: Sequence[tuple[FunctionUnit, cst.Module]], kinds: Sequence[str], seed: int) -> Iterator[_Slot]:
    """Every (function, kind, site) once, spread over functions and kinds, in a seeded order."""
    rng = random.Random(seed)
    queues: list[list[_Slot]] = []
    for unit, module in units:
        per_kind = []
        for kind in kinds:
            sites = [_Slot(unit, kind, site, module) for site in range(count_sites(kind, unit.node))]
            rng.shuffle(sites)
            if sites:
                per_kind.append(sites)
        rng.shuffle(per_kind)
        queue = [slot for group in _round_robin(per_kind) for slot in group]
        if queue:
            queues.append(queue)
    rng.shuffle(queues)
    for group in _round_robin(queues):
        yield from group


def _round_robin(lists: list[list]) -> Iterator[list]:
    """[[a1, a2], [b1]] -> [a1, b1], [a2]: one item of each list per round (each round a list)."""
    depth = max((len(items) for items in lists), default=0)
    for i in range(depth):
        yield [items[i] for items in lists if i < len(items)]


def generate(files: dict[str, str], *, kinds: Sequence[str] = tuple(KINDS), seed: int = 0,
             stats: dict[str, int] | None = None) -> Iterator[Candidate]:
    """Candidates for `files` ({path: clean source}), in the seeded order, without duplicates.

    `stats` (optional) counts what was left out: `duplicate` (same resulting file as an earlier
    candidate), `no_change`, `syntax_error` (the change does not compile), `unparsable_file`.
    """
    stats = stats if stats is not None else {}
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    units: list[tuple[FunctionUnit, cst.Module]] = []
    for path in sorted(files):
        try:
            module = cst.parse_module(files[path])
        except cst.ParserSyntaxError:
            stats["unparsable_file"] = stats.get("unparsable_file", 0) + 1
            continue
        module, found = find_functions(path, module)
        units.extend((unit, module) for unit in found)
    seen: set[str] = set()
    for slot in _schedule(units, kinds, seed):
        unit, module = slot.unit, slot.module
        changed = apply_kind(slot.kind, unit.node, slot.site)
        if changed is None:
            continue
        before = files[unit.path]
        after = module.deep_replace(unit.node, changed).code
        if after == before:
            stats["no_change"] = stats.get("no_change", 0) + 1
            continue
        key = hashlib.sha256(f"{unit.path}\0{after}".encode()).hexdigest()
        if key in seen:
            stats["duplicate"] = stats.get("duplicate", 0) + 1
            continue
        seen.add(key)
        try:
            compile(after, unit.path, "exec")
        except (SyntaxError, ValueError):
            stats["syntax_error"] = stats.get("syntax_error", 0) + 1
            continue
        yield Candidate(id=key[:12], kind=slot.kind, path=unit.path, function=unit.qualname, line=unit.line,
                        site=slot.site, content=after, diff=unified_diff(unit.path, before, after),
                        lines_changed=_lines_changed(before, after), original=before)
