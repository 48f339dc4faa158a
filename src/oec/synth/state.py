"""The resumable record of a synth run: one JSON line per candidate outcome, appended as each finishes.

A killed `oec synth` leaves every finished outcome here (a torn last line is
ignored); the rerun skips those candidates and validates the rest. Valid
outcomes carry the bug's file content (zlib + base64), so the bug commits and
rows can be rebuilt from this file alone.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import zlib
from dataclasses import asdict
from pathlib import Path

from oec.synth.validate import Outcome

__all__ = ["StateFile", "pack_content", "unpack_content"]


def pack_content(text: str) -> str:
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def unpack_content(data: str) -> str:
    return zlib.decompress(base64.b64decode(data)).decode("utf-8")


class StateFile:
    """Append-only JSONL of {"repo", "commit", "test_cmd", "outcome", "content"?} records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> list[dict]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn last line of a killed run
            if isinstance(record, dict) and isinstance(record.get("outcome"), dict):
                records.append(record)
        return records

    def done(self, repo: str, commit: str, test_cmd: str) -> dict[str, dict]:
        """Outcomes already recorded for this repository, clean commit and test command, by candidate id."""
        return {r["outcome"]["id"]: r for r in self.load()
                if r.get("repo") == repo and r.get("commit") == commit and r.get("test_cmd") == test_cmd}

    def append(self, repo: str, commit: str, test_cmd: str, outcome: Outcome, content: str | None) -> None:
        record = {"repo": repo, "commit": commit, "test_cmd": test_cmd, "outcome": asdict(outcome)}
        if content is not None:
            record["content"] = pack_content(content)
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                # a killed run left a torn line without its newline: start on a line of our own
                if handle.tell() > 0 and not self._ends_with_newline():
                    handle.write("\n")
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
