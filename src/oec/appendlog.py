"""Append-only JSON-lines files that survive a kill at any moment.

Each record is one whole line, flushed and fsync'd before the next is written;
a writer killed mid-line leaves a torn last line, which readers skip (via the
caller's parser) and the next append steps past by starting a line of its own.
Used for the records of work done that a rerun must not redo (failed
attempts, synthesis outcomes); `oec.collect.run_dir` keeps trajectories.jsonl
with stricter repairs of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class AppendLog:
    """One append-only JSONL file; safe for threads of one process (one writer process at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def read(self, parse: Callable[[str], T | None]) -> list[T]:
        """Every line `parse` accepts; one it rejects by raising ValueError or returning None is skipped."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = parse(line)
            except ValueError:  # a torn line of a killed writer (json errors are ValueErrors too)
                continue
            if record is not None:
                records.append(record)
        return records

    def append(self, line: str) -> None:
        """Write `line` (no newline in it) as one whole, durable line."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                if handle.tell() > 0 and not self._ends_with_newline():
                    handle.write("\n")  # a killed writer left a torn line: start on a line of our own
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
