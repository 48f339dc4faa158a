"""Load tasks from JSON, JSONL and parquet files, keeping every good row.

A bad row never hides the good ones: each failure becomes a TaskError naming
the file, the line (or parquet row) and the field, and the caller decides
whether to stop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from oec.tasks.model import Task


@dataclass(frozen=True)
class TaskError:
    """One row that could not become a Task."""

    file: Path
    line: int  # 1-based line of the row (JSON/JSONL) or 1-based row number (parquet)
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file} row {self.line}"
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}: {what}{self.message}"


@dataclass
class LoadResult:
    """The tasks that loaded and the rows that did not."""

    tasks: list[Task] = field(default_factory=list)
    errors: list[TaskError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class TaskFileError(ValueError):
    """Raised when a task file has bad rows and the caller asked for strictness."""

    def __init__(self, errors: list[TaskError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} bad task row(s):\n{lines}{more}")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _iter_jsonl(path: Path, text: str) -> Iterator[tuple[int, Any, str | None]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON: {exc.msg} (column {exc.colno})"


def _iter_json(path: Path, text: str) -> Iterator[tuple[int, Any, str | None]]:
    """Yield the elements of a top-level JSON array (or a single object) with the line each starts on."""
    decoder = json.JSONDecoder()
    i = len(text) - len(text.lstrip())
    if text.startswith("{", i):
        try:
            yield _line_of(text, i), decoder.raw_decode(text, i)[0], None
        except json.JSONDecodeError as exc:
            yield exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
        return
    if not text.startswith("[", i):
        yield _line_of(text, i), None, "expected a JSON array of task objects or a single object"
        return
    i += 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text):
            yield _line_of(text, i), None, "invalid JSON: unterminated array"
            return
        if text[i] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            # the rest of the array cannot be located reliably after a syntax error
            yield exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno}); rows after it were not read"
            return
        yield _line_of(text, i), value, None
        i = end


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    import pyarrow.parquet as pq  # imported here: only parquet users pay for it

    table = pq.read_table(path)
    for number, row in enumerate(table.to_pylist(), start=1):
        yield number, row, None


def _validate(path: Path, line: int, row: Any, unit: str) -> Task | list[TaskError]:
    if not isinstance(row, dict):
        return [TaskError(path, line, None, f"expected an object, got {type(row).__name__}", unit)]
    try:
        return Task.model_validate(row)
    except ValidationError as exc:
        return [
            TaskError(path, line, ".".join(str(p) for p in err["loc"]) or None, err["msg"], unit)
            for err in exc.errors()
        ]


def load_tasks(path: str | Path) -> LoadResult:
    """Read every row of a .json, .jsonl or .parquet task file; bad rows become errors, not exceptions."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"task file not found: {path}")
    suffix = path.suffix.lower()
    unit = "row" if suffix == ".parquet" else "line"
    if suffix == ".parquet":
        rows = _iter_parquet(path)
    elif suffix in {".jsonl", ".ndjson"}:
        rows = _iter_jsonl(path, path.read_text(encoding="utf-8"))
    elif suffix == ".json":
        rows = _iter_json(path, path.read_text(encoding="utf-8"))
    else:
        raise ValueError(f"{path}: unsupported task file type '{suffix}' (use .json, .jsonl or .parquet)")

    result = LoadResult()
    seen: dict[str, int] = {}
    for line, row, problem in rows:
        if problem is not None:
            result.errors.append(TaskError(path, line, None, problem, unit))
            continue
        outcome = _validate(path, line, row, unit)
        if isinstance(outcome, Task):
            if outcome.instance_id in seen:
                result.errors.append(TaskError(
                    path, line, "instance_id",
                    f"duplicate instance_id '{outcome.instance_id}' (first at {unit} {seen[outcome.instance_id]})",
                    unit,
                ))
                continue
            seen[outcome.instance_id] = line
            result.tasks.append(outcome)
        else:
            result.errors.extend(outcome)
    return result


def load_tasks_strict(path: str | Path) -> list[Task]:
    """Load tasks and raise TaskFileError (listing every bad row) if any row is bad."""
    result = load_tasks(path)
    if result.errors:
        raise TaskFileError(result.errors)
    return result.tasks
